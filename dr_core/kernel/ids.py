"""APIM resource IDs: parsed and validated in one place.

ARM compares resource IDs case-insensitively, so parsing accepts any case of the fixed
segments; the names keep the case they were given (ARM echoes them back as created).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SERVICE_NAME_PATTERN", "ApimResourceId", "InvalidResourceIdError"]

# ARM's own constraints (apimdeployment.json / azure-mgmt-apimanagement build_*_request).
SERVICE_NAME_PATTERN = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$")
_SERVICE_NAME_MAX = 50
_RESOURCE_GROUP_PATTERN = re.compile(r"^[-\w._()]+$")
_RESOURCE_GROUP_MAX = 90
_SUBSCRIPTION_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_ID_PATTERN = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.ApiManagement/service/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
# Anything longer than this is not an APIM resource ID; refuse before running regexes on it.
_MAX_ID_LENGTH = 400


class InvalidResourceIdError(ValueError):
    """A string that is not a valid API Management service resource ID."""


@dataclass(frozen=True, order=True)
class ApimResourceId:
    subscription_id: str
    resource_group: str
    service_name: str

    @classmethod
    def parse(cls, value: object) -> ApimResourceId:
        """Parse ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}``.

        :raises InvalidResourceIdError: naming the part that is wrong.
        """
        if not isinstance(value, str):
            raise InvalidResourceIdError(
                f"expected an APIM resource ID string, got {type(value).__name__}"
            )
        if len(value) > _MAX_ID_LENGTH:
            raise InvalidResourceIdError(
                f"resource ID is {len(value)} characters long; an APIM resource ID is at most {_MAX_ID_LENGTH}"
            )
        match = _ID_PATTERN.match(value.strip())
        if not match:
            raise InvalidResourceIdError(
                "expected /subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}"
                "/providers/Microsoft.ApiManagement/service/{serviceName}, got "
                f"{_shorten(value)!r}"
            )
        sub, rg, name = match.group("sub"), match.group("rg"), match.group("name")
        if not _SUBSCRIPTION_PATTERN.match(sub):
            raise InvalidResourceIdError(f"subscription ID {_shorten(sub)!r} is not a GUID")
        if len(rg) > _RESOURCE_GROUP_MAX or not _RESOURCE_GROUP_PATTERN.match(rg) or rg.endswith("."):
            raise InvalidResourceIdError(
                f"resource group {_shorten(rg)!r} must be 1-90 letters, digits, '-', '_', '.', '(' or ')'"
                " and not end in '.'"
            )
        if len(name) > _SERVICE_NAME_MAX or not SERVICE_NAME_PATTERN.match(name):
            raise InvalidResourceIdError(
                f"service name {_shorten(name)!r} must be 1-50 letters, digits or '-',"
                " start with a letter and end with a letter or digit"
            )
        return cls(sub.lower(), rg, name)

    def __str__(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ApiManagement/service/{self.service_name}"
        )

    @property
    def key(self) -> str:
        """A case-insensitive identity for comparisons and storage keys."""
        return str(self).lower()


def _shorten(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
