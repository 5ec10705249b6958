"""App-Service-style managed-identity endpoint for the Function App's identities.

``GET /msi/token?api-version=2019-08-01&resource=<uri>[&client_id=|&mi_res_id=|&object_id=|&principal_id=]``
with header ``X-IDENTITY-HEADER: <secret>``: what azure-identity's ``ManagedIdentityCredential`` calls
when ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` are set. Tokens are JWTs (HS256, emulator key) with
the claims ARM and Azurite check; error bodies mimic App Service (``{"statusCode", "message", ...}``).
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from .auth import mint_token
from .operations import Engine
from .wire import Request, Response, json_response

TOKEN_PATH = "/msi/token"
API_VERSION = "2019-08-01"


def _app_service_error(status: int, message: str) -> Response:
    return json_response(status, {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())})


class IdentityApi:
    def __init__(self, engine: Engine, identity_header: str) -> None:
        self.engine = engine
        self.identity_header = identity_header

    def handle(self, req: Request) -> Response:
        if req.path.rstrip("/") != TOKEN_PATH:
            return _app_service_error(404, f"Not found: {req.path}")
        if req.method != "GET":
            return _app_service_error(405, "Only GET is supported.")
        secret = req.header("x-identity-header") or ""
        if not hmac.compare_digest(secret.encode(), self.identity_header.encode()):
            return _app_service_error(401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        if req.param("api-version") != API_VERSION:
            return _app_service_error(400, f"The api-version must be {API_VERSION}.")
        resource = req.param("resource")
        if not resource:
            return _app_service_error(400, "The resource parameter is required.")
        identity = self._select_identity(req)
        if identity is None:
            return _app_service_error(
                400,
                "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
            )
        with self.engine.lock:
            tenant = str(self.engine.store.get("tenantId"))
            signing_key = str(self.engine.store.get("signingKey"))
        token, expires = mint_token(
            signing_key=signing_key,
            tenant=tenant,
            resource=resource,
            object_id=identity["principalId"],
            client_id=identity["clientId"],
            identity_resource_id=identity.get("resourceId"),
        )
        response = json_response(
            200,
            {
                "access_token": token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity["clientId"],
            },
        )
        response.principal = identity["principalId"]
        return response

    def _select_identity(self, req: Request) -> dict[str, Any] | None:
        with self.engine.lock:
            app = self.engine.store.get("functionApp") or {}
        users: list[dict[str, Any]] = app.get("userAssignedIdentities") or []
        selectors = (
            ("client_id", "clientId"),
            ("mi_res_id", "resourceId"),
            ("object_id", "principalId"),
            ("principal_id", "principalId"),
        )
        for param, key in selectors:
            wanted = req.param(param)
            if wanted:
                return next((u for u in users if u[key].lower() == wanted.lower()), None)
        system = app.get("systemAssignedIdentity")
        return dict(system) if system else None
