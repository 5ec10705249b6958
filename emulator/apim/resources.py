"""The ``Microsoft.ApiManagement/service`` resource as ARM renders it, plus ids and names.

The body follows the real GET recording (apim-arm.md §3.5): every key present, unset ones ``null``,
``location`` in display form, the ETag unquoted in the body and quoted in the header.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from typing import Any

PROVIDER = "Microsoft.ApiManagement"
RESOURCE_TYPE = "Microsoft.ApiManagement/service"

# Newest first, as ARM lists them in NoRegisteredProviderFound: the versions Azure accepts for backup and
# restore, 2019-12-01 to 2024-05-01, stable and preview (apim-arm.md §1.2, readme.md tags of the spec).
SUPPORTED_API_VERSIONS: tuple[str, ...] = (
    "2024-05-01",
    "2023-09-01-preview",
    "2023-05-01-preview",
    "2023-03-01-preview",
    "2022-09-01-preview",
    "2022-08-01",
    "2022-04-01-preview",
    "2021-12-01-preview",
    "2021-08-01",
    "2021-04-01-preview",
    "2021-01-01-preview",
    "2020-12-01",
    "2020-06-01-preview",
    "2019-12-01",
    "2019-12-01-preview",
)
# accessType/clientId (managed identity) exist from this api-version on (apim-arm.md §1.2).
MANAGED_IDENTITY_SINCE = "2021-04-01"


def api_version_date(version: str) -> str:
    """``2021-04-01-preview`` -> ``2021-04-01``: api-versions order by their date."""
    return version[:10]

# Tiers the docs list for backup and restore (api-management-features.md: "Backup and restore |
# Consumption No | Developer Yes | Basic Yes | Standard Yes | Premium Yes"). Isolated is not in that
# list, so it is refused too (see emulator/README.md).
BACKUP_TIERS = frozenset({"Developer", "Basic", "Standard", "Premium"})
ALL_TIERS = (
    "Developer", "Standard", "Premium", "Basic", "Consumption", "Isolated", "BasicV2", "StandardV2", "PremiumV2"
)

SERVICE_NAME_RE = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$")
SERVICE_NAME_MAX = 50
# ARM: 1-90 characters, letters/digits (Unicode), '_', '-', '.', '(', ')'; must not end with '.'.
RESOURCE_GROUP_MAX = 90

# The customProperties a real Standard instance reports (recording §3.5).
DEFAULT_CUSTOM_PROPERTIES = {
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls11": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Ssl30": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Ciphers.TripleDes168": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls10": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls11": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Ssl30": "False",
    "Microsoft.WindowsAzure.ApiManagement.Gateway.Protocols.Server.Http2": "False",
}

# Display names of the regions a seed is likely to use; ARM answers with the display form.
REGION_DISPLAY_NAMES = {
    "westeurope": "West Europe",
    "northeurope": "North Europe",
    "eastus": "East US",
    "eastus2": "East US 2",
    "westus": "West US",
    "westus2": "West US 2",
    "westus3": "West US 3",
    "centralus": "Central US",
    "southcentralus": "South Central US",
    "northcentralus": "North Central US",
    "uksouth": "UK South",
    "ukwest": "UK West",
    "francecentral": "France Central",
    "germanywestcentral": "Germany West Central",
    "swedencentral": "Sweden Central",
    "switzerlandnorth": "Switzerland North",
    "norwayeast": "Norway East",
    "southeastasia": "Southeast Asia",
    "eastasia": "East Asia",
    "japaneast": "Japan East",
    "australiaeast": "Australia East",
    "canadacentral": "Canada Central",
    "brazilsouth": "Brazil South",
    "centraluseuap": "Central US EUAP",
}


def normalize_location(location: str) -> str:
    """``"West Europe"`` -> ``"westeurope"`` (the form used in ids and operation ids)."""
    return location.replace(" ", "").lower()


def display_location(location: str) -> str:
    """``"westeurope"`` -> ``"West Europe"``; unknown names are kept as given."""
    return REGION_DISPLAY_NAMES.get(normalize_location(location), location)


def subscription_id(sub: str) -> str:
    return f"/subscriptions/{sub}"


def resource_group_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def service_id(sub: str, rg: str, name: str) -> str:
    return f"{resource_group_id(sub, rg)}/providers/{RESOURCE_TYPE}/{name}"


def new_operation_id(location: str, service_name: str) -> str:
    """``base64("{region}:{name}_Act_{8 hex}")`` like real APIM (apim-arm.md §1.5).

    Standard base64 can contain ``/`` and ``+``; the id travels as a URL path segment, so draw
    again until it has neither (real ids seen so far only use ``=`` padding).
    """
    while True:
        raw = f"{normalize_location(location)}:{service_name}_Act_{secrets.token_hex(4)}"
        encoded = base64.b64encode(raw.encode()).decode()
        if "/" not in encoded and "+" not in encoded:
            return encoded


def etag_for(counter: int) -> str:
    """ETags look like ``AAAAAABs4Uo=``: base64 of an 8-byte big-endian counter."""
    return base64.b64encode(counter.to_bytes(8, "big")).decode()


def _service_urls(name: str, location: str, tier: str) -> dict[str, Any]:
    host = name.lower()
    region = normalize_location(location)
    urls: dict[str, Any] = {
        "gatewayUrl": f"https://{host}.azure-api.net",
        "gatewayRegionalUrl": f"https://{host}-{region}-01.regional.azure-api.net",
        "portalUrl": f"https://{host}.portal.azure-api.net",
        "developerPortalUrl": f"https://{host}.developer.azure-api.net",
        "managementApiUrl": f"https://{host}.management.azure-api.net",
        "scmUrl": f"https://{host}.scm.azure-api.net",
    }
    if tier == "Consumption":
        # Consumption has no regional gateway, portals or SCM endpoint (ListByResourceGroup example).
        for key in ("gatewayRegionalUrl", "portalUrl", "developerPortalUrl", "scmUrl"):
            urls[key] = None
    return urls


def default_hostname_configurations(name: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "Proxy",
            "hostName": f"{name.lower()}.azure-api.net",
            "encodedCertificate": None,
            "keyVaultId": None,
            "certificatePassword": None,
            "negotiateClientCertificate": False,
            "certificate": None,
            "defaultSslBinding": True,
            "identityClientId": None,
            "certificateSource": "BuiltIn",
            "certificateStatus": None,
        }
    ]


def render_service(svc: dict[str, Any]) -> dict[str, Any]:
    """The ``ApiManagementServiceResource`` body for a stored service record."""
    tier = svc["sku"]["name"]
    properties: dict[str, Any] = {
        "publisherEmail": svc["publisherEmail"],
        "publisherName": svc["publisherName"],
        "notificationSenderEmail": svc.get("notificationSenderEmail", "apimgmt-noreply@mail.windowsazure.com"),
        "provisioningState": svc["provisioningState"],
        "targetProvisioningState": svc["targetProvisioningState"],
        "createdAtUtc": svc["createdAtUtc"],
        **_service_urls(svc["name"], svc["location"], tier),
        "hostnameConfigurations": copy.deepcopy(svc["hostnameConfigurations"]),
        "publicIPAddresses": copy.deepcopy(svc.get("publicIPAddresses")),
        "privateIPAddresses": None,
        "additionalLocations": copy.deepcopy(svc.get("additionalLocations")),
        "virtualNetworkConfiguration": copy.deepcopy(svc.get("virtualNetworkConfiguration")),
        "customProperties": copy.deepcopy(svc.get("customProperties", DEFAULT_CUSTOM_PROPERTIES)),
        "virtualNetworkType": svc.get("virtualNetworkType") or "None",
        "certificates": copy.deepcopy(svc.get("certificates")),
        "disableGateway": False,
        "apiVersionConstraint": {"minApiVersion": None},
        "publicIpAddressId": None,
        "publicNetworkAccess": "Enabled",
        "privateEndpointConnections": None,
        "platformVersion": svc.get("platformVersion", "stv2"),
    }
    return {
        "id": service_id(svc["subscriptionId"], svc["resourceGroup"], svc["name"]),
        "name": svc["name"],
        "type": RESOURCE_TYPE,
        "tags": dict(svc.get("tags") or {}),
        "location": display_location(svc["location"]),
        "etag": etag_for(svc["etagCounter"]),
        "properties": properties,
        "sku": dict(svc["sku"]),
        "identity": copy.deepcopy(svc.get("identity")),
        "zones": copy.deepcopy(svc.get("zones")),
        "systemData": copy.deepcopy(svc["systemData"]),
    }
