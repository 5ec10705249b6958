"""ARM's front door for the stand-in providers: the same checks, in the same order, as emulator/apim/arm.py.

authentication (401) -> api-version (400) -> subscription (400/404) -> resource group name (400) ->
RBAC with the action ARM derives from the path and method (403, emulator/apim/auth.py) ->
resource group (404) -> the provider's own answer. Every answer gets ARM's headers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from emulator.apim import auth
from emulator.apim.errors import ArmError
from emulator.apim.operations import Engine
from emulator.apim.resources import RESOURCE_GROUP_MAX
from emulator.apim.wire import Request, Response, json_response

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
RG_ALLOWED_RE = re.compile(r"^[\w\-.()]+$", re.UNICODE)
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Call:
    """One authenticated, authorised ARM request for a stand-in provider."""

    req: Request
    principal: auth.Principal
    subscription: str
    resource_group: str | None
    api_version: str

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or ARM's 400 naming what is wrong."""
        if len(self.req.body) > MAX_BODY_BYTES:
            raise ArmError(413, "RequestEntityTooLarge", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        if not self.req.body.strip():
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body is empty.",
            )
        try:
            body = json.loads(self.req.body)
        except (ValueError, RecursionError):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: it is not JSON.",
            ) from None
        if not isinstance(body, dict):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: expected a JSON object.",
            )
        return body


Handler = Callable[[Call], Response]


class ArmFront:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def serve(
        self,
        req: Request,
        *,
        subscription: str,
        resource_group: str | None,
        api_versions: tuple[str, ...],
        resource_type: str,
        handler: Handler,
        location: str | None = None,
    ) -> Response:
        request_id = str(uuid.uuid4())
        principal: auth.Principal | None = None
        try:
            principal = auth.authenticate(req.header("authorization"), tenant=self._tenant())
            version = req.param("api-version")
            if not version:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            if version not in api_versions:
                raise ArmError(
                    400,
                    "NoRegisteredProviderFound",
                    f"No registered resource provider found for location '{location or 'global'}' and API version "
                    f"'{version}' for type '{resource_type}'. "
                    f"The supported api-versions are '{', '.join(api_versions)}'.",
                )
            self._subscription(subscription)
            if resource_group is not None:
                self._validate_group_name(resource_group)
            try:
                permission = auth.required_permission(req.method, req.path)
            except ValueError as exc:
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{req.method}'."
                ) from exc
            auth.authorize(self.engine.store.get("armRoles"), principal, permission)
            if resource_group is not None and not self._group_exists(subscription, resource_group):
                raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")
            response = handler(Call(req, principal, subscription, resource_group, version))
        except ArmError as exc:
            response = json_response(exc.status, exc.body(), exc.headers)
        response.principal = principal.object_id if principal else None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        write = req.method in ("PUT", "PATCH", "POST", "DELETE")
        response.headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Expires": "-1",
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": req.header("x-ms-correlation-request-id") or request_id,
            "x-ms-routing-request-id": f"WESTEUROPE:{stamp}:{request_id}",
            f"x-ms-ratelimit-remaining-subscription-{'writes' if write else 'reads'}": "1199" if write else "11999",
        } | response.headers
        return response

    def _tenant(self) -> str:
        return str(self.engine.store.get("tenantId", "00000000-0000-0000-0000-000000000000"))

    def _subscription(self, subscription: str) -> None:
        if not GUID_RE.match(subscription):
            raise ArmError(
                400,
                "InvalidSubscriptionId",
                f"The provided subscription identifier '{subscription}' is malformed or invalid.",
            )
        if not any(
            s["subscriptionId"].lower() == subscription.lower() for s in self.engine.store.get("subscriptions", [])
        ):
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")

    @staticmethod
    def _validate_group_name(rg: str) -> None:
        if not RG_ALLOWED_RE.match(rg) or not 1 <= len(rg) <= RESOURCE_GROUP_MAX or rg.endswith("."):
            raise ArmError(
                400,
                "InvalidResourceGroup",
                f"The provided resource group name '{rg}' is invalid: 1-{RESOURCE_GROUP_MAX} letters, digits, "
                "'-', '.', '(', ')' or '_', not ending in a period.",
            )

    def _group_exists(self, subscription: str, rg: str) -> bool:
        for sub in self.engine.store.get("subscriptions", []):
            if sub["subscriptionId"].lower() == subscription.lower():
                return any(g["name"].lower() == rg.lower() for g in sub["resourceGroups"])
        return False


def not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    """ARM's 404 for a resource (or a parent) that does not exist."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
