"""Bearer-token checks and RBAC as ARM applies them, and the tokens the identity endpoint issues.

Signatures are not verified (like Azurite's ``--oauth basic``): the emulator checks the claims ARM
checks first (audience, lifetime) and takes the caller from ``oid``. Lifetimes use the real clock, not
the movable one, because the same tokens go to Azurite, whose clock cannot be moved.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import jwt

from .errors import ArmError
from .kinds import SEGMENTS

ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)
# ARM tolerates a few minutes of clock skew on nbf.
CLOCK_SKEW_SECONDS = 300
TOKEN_LIFETIME_SECONDS = 24 * 3600  # App Service managed-identity tokens last about a day

# ARM spells provider namespaces and resource types as registered, whatever the request's casing.
CANONICAL_NAMESPACES = {
    "microsoft.apimanagement": "Microsoft.ApiManagement",
    "microsoft.resources": "Microsoft.Resources",
    # The stand-in providers beside APIM (emulator/arm_providers/).
    "microsoft.cdn": "Microsoft.Cdn",
    "microsoft.network": "Microsoft.Network",
    "microsoft.insights": "Microsoft.Insights",
}
CANONICAL_TYPES = {
    "service": "service",
    "operationresults": "operationresults",
    **SEGMENTS,  # the configuration child resources: apis, namedValues, apiVersionSets, policyFragments ...
    # As the stand-in providers register them (their operations lists): Front Door, Traffic Manager,
    # DNS, Azure Monitor.
    "profiles": "profiles",
    "origingroups": "originGroups",
    "origins": "origins",
    "trafficmanagerprofiles": "trafficManagerProfiles",
    "azureendpoints": "azureEndpoints",
    "externalendpoints": "externalEndpoints",
    "dnszones": "dnszones",
    "cname": "CNAME",
    "diagnosticsettings": "diagnosticSettings",
}
# POST actions as the provider registers them (``.../namedValues/listValue/action``).
CANONICAL_ACTIONS = {
    "backup": "backup",
    "restore": "restore",
    "listvalue": "listValue",
    "refreshsecret": "refreshSecret",
    "listsecrets": "listSecrets",
    "regenerateprimarykey": "regeneratePrimaryKey",
    "regeneratesecondarykey": "regenerateSecondaryKey",
    "listreferences": "listReferences",
    "reconnect": "reconnect",
}
# The operation ARM appends for each method on a resource (POST goes to an action segment instead).
RESOURCE_OPERATIONS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


@dataclass(frozen=True)
class Principal:
    object_id: str
    app_id: str | None
    tenant_id: str | None


def _www_authenticate(tenant: str, description: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f'Bearer authorization_uri="https://login.windows.net/{tenant}", '
            f'error="invalid_token", error_description="{description}"'
        )
    }


def _ms_date(epoch: float) -> str:
    # ARM prints .NET invariant dates: 8/2/2022 9:11:24 AM
    moment = datetime.fromtimestamp(epoch, UTC)
    hour = moment.hour % 12 or 12
    ampm = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:{moment.second:02d} {ampm}"


def authenticate(authorization: str | None, *, tenant: str) -> Principal:
    """The caller behind an ``Authorization`` header, or the 401 ARM would send."""
    if not authorization:
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            headers=_www_authenticate(tenant, "The authentication failed because of missing 'Authorization' header."),
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            headers=_www_authenticate(tenant, "The access token is missing or invalid."),
        )
    try:
        claims = jwt.decode(
            token.strip(),
            options={"verify_signature": False, "verify_exp": False, "verify_aud": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            headers=_www_authenticate(tenant, "The access token is invalid."),
        ) from None
    if not isinstance(claims, dict):
        raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            headers=_www_authenticate(tenant, "The access token has no expiry."),
        )
    if exp < now:
        message = (
            f"The access token expiry UTC time '{_ms_date(exp)}' is earlier than current UTC time '{_ms_date(now)}'."
        )
        raise ArmError(
            401,
            "ExpiredAuthenticationToken",
            message,
            headers=_www_authenticate(tenant, "The access token expiry UTC time is earlier than current UTC time."),
        )
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW_SECONDS:
        raise ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is not yet valid.",
            headers=_www_authenticate(tenant, "The access token is not yet valid."),
        )
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not any(a in ARM_AUDIENCES for a in audiences):
        allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
        raise ArmError(
            401,
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{aud}'. "
            f"It should exactly match with one of the allowed audiences {allowed}.",
            headers=_www_authenticate(tenant, "The access token has been obtained for wrong audience or resource."),
        )
    oid = claims.get("oid") or claims.get("sub")
    if not isinstance(oid, str) or not oid:
        raise ArmError(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
            headers=_www_authenticate(tenant, "The access token has no object id."),
        )
    app_id = claims.get("appid") or claims.get("azp")
    tid = claims.get("tid")
    return Principal(oid.lower(), str(app_id) if app_id else None, str(tid) if tid else None)


@dataclass(frozen=True)
class Permission:
    """What ARM authorises a request against: one action, at one scope."""

    action: str
    scope: str


def required_permission(method: str, path: str) -> Permission:
    """The action and scope ARM derives from a request's path and method.

    The action is the provider namespace, then every resource type segment after
    ``providers/{namespace}/`` with the names dropped, then the operation: GET -> ``/read``,
    PUT/PATCH -> ``/write``, DELETE -> ``/delete``, and POST to ``{resource}/{verb}`` ->
    ``/{verb}/action``. A collection (an odd number of segments after the namespace) is listed with
    its type's ``/read``, at the scope that holds the collection (the parent resource, or the resource
    group or subscription for top-level types). A resource is authorised at its own id, so
    ``service/{name}/operationresults/{id}`` is its own type (``service/operationresults``) scoped
    under the service.

    :raises ValueError: for a path that names no provider resource, or a method ARM has no action for.
    """
    segments = [unquote(s) for s in path.split("?", maxsplit=1)[0].strip("/").split("/") if s]
    lowered = [s.lower() for s in segments]
    if "providers" not in lowered:
        raise ValueError(f"'{path}' names no resource provider")
    at = len(lowered) - 1 - lowered[::-1].index("providers")
    if at + 1 >= len(segments):
        raise ValueError(f"'{path}' names no resource provider namespace")
    parent = _canonical_prefix(segments[:at])
    namespace = CANONICAL_NAMESPACES.get(lowered[at + 1], segments[at + 1])
    rest = segments[at + 2 :]
    if not rest:
        raise ValueError(f"'{path}' names no resource type")
    types = [CANONICAL_TYPES.get(t.lower(), t) for t in rest[0::2]]
    names = rest[1::2]
    resource_path = parent + f"/providers/{namespace}" + "".join(
        f"/{t}/{n}" for t, n in zip(types, names, strict=False)
    )
    method = method.upper()
    if len(rest) % 2 == 0:  # a resource: .../{type}/{name}
        operation = RESOURCE_OPERATIONS.get(method)
        if operation is None:
            raise ValueError(f"ARM has no action for {method} on a resource")
        return Permission("/".join([namespace, *types, operation]), resource_path)
    # A collection or an action: .../{type}/{name}/{last}
    last = types[-1]
    owner = resource_path if names else parent
    if method == "POST":
        verb = CANONICAL_ACTIONS.get(rest[-1].lower(), rest[-1])
        return Permission("/".join([namespace, *types[:-1], verb, "action"]), owner)
    if method in ("GET", "HEAD"):
        return Permission("/".join([namespace, *types[:-1], last, "read"]), owner)
    raise ValueError(f"ARM has no action for {method} on a collection")


def _canonical_prefix(segments: list[str]) -> str:
    """``/subscriptions/{s}[/resourceGroups/{rg}]`` in ARM's casing (names kept as given)."""
    out: list[str] = []
    for i, segment in enumerate(segments):
        if i % 2 == 0:
            canonical = {"subscriptions": "subscriptions", "resourcegroups": "resourceGroups"}
            out.append(canonical.get(segment.lower(), segment))
        else:
            out.append(segment)
    return "/" + "/".join(out) if out else ""


def _scope_covers(scope: str, resource: str) -> bool:
    scope = scope.rstrip("/").lower()
    resource = resource.rstrip("/").lower()
    return scope in ("", "/") or resource == scope or resource.startswith(scope + "/")


def action_matches(pattern: str, action: str) -> bool:
    """ARM's wildcard match: case-insensitive, ``*`` stands for any characters (``/`` included), nothing
    else is special (unlike shell globs, ``?`` and ``[`` are literal)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, re.IGNORECASE | re.DOTALL) is not None


def authorize(roles: dict[str, list[dict[str, Any]]] | None, principal: Principal, permission: Permission) -> None:
    """Raise ARM's 403 unless ``principal`` holds ``permission``; no table = everyone may."""
    if roles is None:
        return
    for grant in roles.get(principal.object_id, []):
        if _scope_covers(grant["scope"], permission.scope) and any(
            action_matches(p, permission.action) for p in grant["actions"]
        ):
            return
    oid = principal.object_id
    raise ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
        f"'{permission.action}' over scope '{permission.scope}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials.",
    )


def mint_token(
    *,
    signing_key: str,
    tenant: str,
    resource: str,
    object_id: str,
    client_id: str,
    identity_resource_id: str | None = None,
    lifetime: int = TOKEN_LIFETIME_SECONDS,
) -> tuple[str, int]:
    """A managed-identity access token (HS256 with the emulator's key) and its expiry (epoch)."""
    now = int(time.time())
    expires = now + lifetime
    claims: dict[str, Any] = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now,
        "nbf": now,
        "exp": expires,
        "oid": object_id,
        "sub": object_id,
        "appid": client_id,
        "appidacr": "2",
        "idtyp": "app",
        "tid": tenant,
        "ver": "1.0",
    }
    if identity_resource_id:
        claims["xms_mirid"] = identity_resource_id
    token = jwt.encode(claims, signing_key, algorithm="HS256", headers={"kid": "apim-dr-emulator"})
    return token, expires
