"""Error responses in the two shapes real traffic shows.

ARM's own front door (authentication, RBAC, throttling, routing, resource lookup) answers
``{"error": {"code", "message"}}``. The API Management resource provider adds
``"details": null, "innerError": null`` (apim-arm.md §1.6). Both validate against the common-types
``ErrorResponse`` schema; keeping them apart lets a client that logs the raw body see what Azure
would have sent.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorShape = Literal["arm", "apim"]


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
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.shape: ErrorShape = shape
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, shape=self.shape)


def error_body(code: str, message: str, *, shape: ErrorShape = "apim") -> dict[str, Any]:
    if shape == "apim":
        return {"error": {"code": code, "message": message, "details": None, "innerError": None}}
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
