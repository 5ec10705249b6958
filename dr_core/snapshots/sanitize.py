"""From an ARM body to a snapshot item and back: no secret in, references made relative, and re-pointed on restore.

The reader (an adapter) turns each entity it reads into its REST body without read-only fields
(the SDK model's ``serialize(keep_readonly=False)``: ``id``, ``name``, ``type``, ``isOnline``,
``provisioningState`` ...). :func:`item_properties` then applies the rules a snapshot promises:

- **No secret value, ever.** A secret named value keeps its display name, tags and ``secret: true``
  but never a value (APIM does not return it on GET either; this is the second line of defence); a
  Key Vault reference is kept. A backend's credential values (headers, query parameters, the
  authorization parameter, the proxy password) are kept only when they are ``{{named value}}``
  references; a literal is removed. Every removal is reported as a :class:`NotCaptured` line.
- **Volatile fields out**: a Key Vault reference's ``lastStatus`` (when APIM last fetched it)
  changes without any configuration change.
- **References relative to the service**: a value holding the instance's own resource ID
  (``.../service/prod/apiVersionSets/v1``) is stored as ``/apiVersionSets/v1``, so the same
  configuration in two instances is the same document; :func:`for_target` puts the target's ID back.
"""

from __future__ import annotations

import copy
import re

from .document import JsonValue, NotCaptured
from .kinds import ItemId

__all__ = ["NOT_CAPTURED_SECRET", "for_target", "item_properties"]

NOT_CAPTURED_SECRET = "secret, value not captured"
_NAMED_VALUE_ONLY = re.compile(r"^\s*\{\{[^{}]{1,256}\}\}\s*$")


def item_properties(item_id: ItemId, body: dict[str, JsonValue], *,
                    service_id: str) -> tuple[dict[str, JsonValue], list[NotCaptured]]:
    """The ``properties`` a snapshot keeps of an entity's REST body, and what it left out."""
    raw = body.get("properties", body)
    properties: dict[str, JsonValue] = copy.deepcopy(raw) if isinstance(raw, dict) else {}
    missing: list[NotCaptured] = []
    kind = item_id.kind.key
    key_vault = properties.get("keyVault")
    if isinstance(key_vault, dict):
        key_vault.pop("lastStatus", None)
    if kind == "named-values" and properties.get("secret") is True:
        if properties.pop("value", None) is not None or not key_vault:
            missing.append(NotCaptured(str(item_id), NOT_CAPTURED_SECRET))
    elif kind == "certificates":
        for secret in ("data", "password"):
            if properties.pop(secret, None) is not None:
                missing.append(NotCaptured(f"{item_id}#{secret}", NOT_CAPTURED_SECRET))
    elif kind == "backends":
        missing += _backend_secrets(item_id, properties)
    relative = _relative(properties, service_id.rstrip("/"))
    assert isinstance(relative, dict)
    return relative, missing


def for_target(properties: dict[str, JsonValue], *, target_id: str) -> dict[str, JsonValue]:
    """The item's properties with service-relative references pointing at ``target_id``."""
    result = _absolute(properties, target_id.rstrip("/"))
    assert isinstance(result, dict)
    return result


def _backend_secrets(item_id: ItemId, properties: dict[str, JsonValue]) -> list[NotCaptured]:
    missing: list[NotCaptured] = []
    credentials = properties.get("credentials")
    if isinstance(credentials, dict):
        for section in ("header", "query"):
            values = credentials.get(section)
            if not isinstance(values, dict):
                continue
            for name, entries in list(values.items()):
                if isinstance(entries, list) and all(isinstance(e, str) and _NAMED_VALUE_ONLY.match(e)
                                                     for e in entries):
                    continue
                del values[name]
                missing.append(NotCaptured(f"{item_id}#credentials.{section}.{name}", NOT_CAPTURED_SECRET))
        authorization = credentials.get("authorization")
        if isinstance(authorization, dict):
            parameter = authorization.get("parameter")
            if isinstance(parameter, str) and not _NAMED_VALUE_ONLY.match(parameter):
                del authorization["parameter"]
                missing.append(NotCaptured(f"{item_id}#credentials.authorization.parameter", NOT_CAPTURED_SECRET))
    proxy = properties.get("proxy")
    if isinstance(proxy, dict):
        password = proxy.get("password")
        if isinstance(password, str) and not _NAMED_VALUE_ONLY.match(password):
            del proxy["password"]
            missing.append(NotCaptured(f"{item_id}#proxy.password", NOT_CAPTURED_SECRET))
    return missing


def _relative(value: JsonValue, service_id: str) -> JsonValue:
    if isinstance(value, str):
        if value.lower().startswith(service_id.lower() + "/"):
            return value[len(service_id):]
        return value
    if isinstance(value, dict):
        return {k: _relative(v, service_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, service_id) for v in value]
    return value


_RELATIVE_REF = re.compile(
    r"^/(apis|apiVersionSets|loggers|backends|certificates|schemas|products|groups|tags|namedValues|"
    r"policyFragments|diagnostics)/", re.IGNORECASE)


def _absolute(value: JsonValue, target_id: str) -> JsonValue:
    if isinstance(value, str):
        return target_id + value if _RELATIVE_REF.match(value) else value
    if isinstance(value, dict):
        return {k: _absolute(v, target_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute(v, target_id) for v in value]
    return value
