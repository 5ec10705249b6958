"""Error responses in the two shapes real traffic shows.

ARM's own front door (authentication, RBAC, throttling, routing, resource lookup) answers
``{"error": {"code", "message"}}``. The API Management resource provider adds
``"details": null, "innerError": null`` (apim-arm.md §1.6). Both validate against the common-types
``ErrorResponse`` schema; keeping them apart lets a client that logs the raw body see what Azure
would have sent.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorShape = Literal["arm", "apim", "entity"]


class ArmError(Exception):
    """An HTTP error answer; raised anywhere in request handling and rendered by the server."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        shape: ErrorShape = "arm",
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.shape: ErrorShape = shape
        self.headers = dict(headers or {})
        self.details = details

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, shape=self.shape, details=self.details)


def error_body(
    code: str, message: str, *, shape: ErrorShape = "apim", details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if shape == "apim":
        return {"error": {"code": code, "message": message, "details": None, "innerError": None}}
    if shape == "entity":
        # What the configuration-entity controllers answer (Azure/apiops #491, #494, #668; apiops-cli #261):
        # {"error": {"code", "message", "details": null | [{"code", "target", "message"}]}}.
        return {"error": {"code": code, "message": message, "details": details}}
    return {"error": {"code": code, "message": message}}


def apim_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> ArmError:
    """An error raised by the API Management resource provider itself."""
    return ArmError(status, code, message, shape="apim", headers=headers)


def invalid_parameter(message: str, parameter: str | None = None) -> ArmError:
    """APIM's synchronous ``400 InvalidParameters``.

    The observed messages carry .NET exception text: ``Invalid parameter: <text>\\r\\nParameter name: <p>``
    (azure-cli #16262, azure-powershell #23411), so every validation message here follows that form.
    """
    text = f"Invalid parameter: {message}"
    if parameter:
        text += f"\r\nParameter name: {parameter}"
    return apim_error(400, "InvalidParameters", text)


def entity_error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> ArmError:
    """An error of APIM's configuration-entity API (``details: null``)."""
    return ArmError(status, code, message, shape="entity", headers=headers)


def validation_error(target: str, message: str) -> ArmError:
    """APIM's 400 ``ValidationError`` naming the field, as real answers show it (Azure/apiops #491):
    ``"One or more fields contain incorrect values:"`` with one detail ``{code, target, message}``."""
    return ArmError(
        400,
        "ValidationError",
        "One or more fields contain incorrect values:",
        shape="entity",
        details=[{"code": "ValidationError", "target": target, "message": message}],
    )


def not_found(entity: str) -> ArmError:
    """``404 ResourceNotFound`` "Api not found." (Azure/apiops #494, #643)."""
    return entity_error(404, "ResourceNotFound", f"{entity} not found.")
