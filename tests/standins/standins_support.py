"""Seed, identities and small helpers for the stand-in tests."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import requests
from azure.core.credentials import AccessToken

from emulator.apim import ApimEmulator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SEED = json.loads((PROJECT_ROOT / "emulator" / "seed.example.json").read_text())
SUB = EXAMPLE_SEED["subscriptions"][0]["subscriptionId"]
TENANT = EXAMPLE_SEED["tenantId"]
PROD, DR = "apim-contoso-prod", "apim-contoso-dr"
PROD_RG, DR_RG = "rg-apim-prod", "rg-apim-dr"
PROD_PRINCIPAL = "d7cdbab0-62f0-47a3-bd7a-d386076fc576"
DR_PRINCIPAL = "16939f58-bc5a-4a0c-b28b-e600aab4a73a"
DR_UA_PRINCIPAL = "86dce490-c4eb-45a5-bfac-64abd8e7f1b7"
DR_UA_CLIENT_ID = "f30d1dd2-e253-481b-8360-007cd4b24352"
FUNC_SYSTEM = EXAMPLE_SEED["functionApp"]["systemAssignedIdentity"]
FUNC_UA = EXAMPLE_SEED["functionApp"]["userAssignedIdentities"][0]
VAULT = "kv-contoso-apim"
DR_VAULT = "kv-contoso-dr"
VAULT_URL = f"https://{VAULT}.vault.azure.net"
DR_VAULT_URL = f"https://{DR_VAULT}.vault.azure.net"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
CERTIFICATE_USER = "Key Vault Certificate User"
AFD_PROFILE, AFD_GROUP, AFD_RG = "afd-contoso", "apim", "rg-apim-prod"
TM_PROFILE = "tm-contoso-api"

STANDIN_SEED: dict[str, Any] = copy.deepcopy(EXAMPLE_SEED) | {
    "keyVaults": [
        {
            "name": VAULT,
            "location": "westeurope",
            "resourceGroup": PROD_RG,
            "roleAssignments": [
                {"principalId": PROD_PRINCIPAL, "role": "Key Vault Secrets User"},
                {"principalId": DR_UA_PRINCIPAL, "role": CERTIFICATE_USER},
                {"principalId": FUNC_UA["principalId"], "role": SECRETS_USER},
            ],
            "secrets": [
                {"name": "partner-signing-key", "value": "emulator-only-signing-key", "contentType": "text/plain"}
            ],
            "certificates": [{"name": "api-contoso-com", "subject": "CN=api.contoso.com"}],
        },
        {
            "name": DR_VAULT,
            "location": "northeurope",
            "resourceGroup": DR_RG,
            "roleAssignments": [{"principalId": DR_PRINCIPAL, "role": "Key Vault Secrets User"}],
            "certificates": [{"name": "api-contoso-com", "subject": "CN=api.contoso.com"}],
        },
    ],
    "frontDoorProfiles": [
        {
            "name": AFD_PROFILE,
            "resourceGroup": AFD_RG,
            "originGroups": [
                {
                    "name": AFD_GROUP,
                    "origins": [
                        {
                            "name": "prod",
                            "hostName": "apim-contoso-prod.azure-api.net",
                            "priority": 1,
                            "weight": 1000,
                            "enabledState": "Enabled",
                        },
                        {
                            "name": "dr",
                            "hostName": "apim-contoso-dr.azure-api.net",
                            "priority": 2,
                            "weight": 1000,
                            "enabledState": "Disabled",
                        },
                    ],
                }
            ],
        }
    ],
    "trafficManagerProfiles": [
        {
            "name": TM_PROFILE,
            "resourceGroup": PROD_RG,
            "dnsName": "contoso-api",
            "endpoints": [
                {
                    "type": "externalEndpoints",
                    "name": "prod",
                    "target": "apim-contoso-prod.azure-api.net",
                    "priority": 1,
                    "endpointLocation": "westeurope",
                },
                {
                    "type": "externalEndpoints",
                    "name": "dr",
                    "target": "apim-contoso-dr.azure-api.net",
                    "priority": 2,
                    "endpointLocation": "northeurope",
                },
            ],
        }
    ],
    "dnsZones": [
        {
            "name": "contoso.com",
            "resourceGroup": PROD_RG,
            "records": [
                {"type": "CNAME", "name": "api", "cname": "apim-contoso-prod.azure-api.net", "ttl": 300},
                {"type": "CNAME", "name": "www", "cname": "contoso-api.trafficmanager.net", "ttl": 60},
            ],
        }
    ],
}


def token(emu: ApimEmulator, resource: str, client_id: str | None = None) -> tuple[str, int]:
    params = {"api-version": "2019-08-01", "resource": resource}
    if client_id:
        params["client_id"] = client_id
    response = requests.get(
        emu.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": emu.identity_header}, timeout=10
    )
    response.raise_for_status()
    body = response.json()
    return str(body["access_token"]), int(body["expires_on"])


class IdentityCredential:
    """A TokenCredential backed by the emulator's managed-identity endpoint (what ManagedIdentityCredential
    calls in App Service), for one of the Function App's identities."""

    def __init__(self, emu: ApimEmulator, client_id: str | None = None) -> None:
        self.emu = emu
        self.client_id = client_id
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        resource = scopes[0].removesuffix("/.default")
        value, expires = token(self.emu, resource, self.client_id)
        return AccessToken(value, expires)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        got = self.get_token(*scopes)
        return AccessTokenInfo(got.token, got.expires_on)


def client_kwargs(emu: ApimEmulator, **extra: Any) -> dict[str, Any]:
    """What differs from production for an SDK client: the CA bundle and the proxy (and no retries, unless given)."""
    return {"connection_verify": str(emu.ca_bundle), "proxies": {"https": emu.proxy_url}} | extra


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)
