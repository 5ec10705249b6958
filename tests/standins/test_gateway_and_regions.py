"""Gateways (health checks, custom hostnames through emulated DNS and Traffic Manager) and region outages."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.cdn import CdnManagementClient
from standins_support import (
    AFD_GROUP,
    AFD_PROFILE,
    AFD_RG,
    DR,
    DR_RG,
    DR_VAULT_URL,
    PROD,
    PROD_RG,
    SUB,
    IdentityCredential,
)

from emulator.apim import ApimEmulator

HEALTH_API = {
    "id": "health",
    "displayName": "Health",
    "path": "health",
    "subscriptionRequired": False,
    "operations": [
        {"id": "ping", "displayName": "Ping", "method": "GET", "urlTemplate": "/ping"},
        {"id": "item", "displayName": "Item", "method": "GET", "urlTemplate": "/items/{id}",
         "templateParameters": [{"name": "id", "type": "string", "required": True}]},
    ],
}
KEYED_API = {"id": "orders-api", "displayName": "Orders", "path": "orders",
             "operations": [{"id": "list", "displayName": "List", "method": "GET", "urlTemplate": "/"}]}
SUBSCRIPTION = {"id": "probe", "displayName": "Probe", "scope": "/apis", "state": "active",
                "primaryKey": "probe-key-1", "secondaryKey": "probe-key-2"}


def session(emu: ApimEmulator) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.proxies = {"https": emu.proxy_url}
    s.verify = str(emu.ca_bundle)
    return s


@pytest.fixture
def configured(emu: ApimEmulator) -> ApimEmulator:
    emu.admin.set_arm_roles(None)
    for name in (PROD, DR):
        emu.admin.update_service(name, configuration={"apis": [HEALTH_API, KEYED_API], "subscriptions": [SUBSCRIPTION]})
    return emu


def apim(emu: ApimEmulator, **extra: Any) -> Any:  # Any: the tests send plain dict bodies
    return ApiManagementClient(
        IdentityCredential(emu),
        SUB,
        base_url=emu.arm_url,
        connection_verify=str(emu.ca_bundle),
        polling_interval=0.1,
        **extra,
    )


def test_gateway_answers_for_configured_operations(configured: ApimEmulator) -> None:
    with apim(configured) as client:
        gateway_url = client.api_management_service.get(PROD_RG, PROD).gateway_url
    assert gateway_url == "https://apim-contoso-prod.azure-api.net"
    s = session(configured)
    ok = s.get(f"{gateway_url}/health/ping", timeout=10)
    assert ok.status_code == 200 and ok.json()["operation"] == "ping" and ok.headers["x-apim-dr-served-by"] == PROD
    assert s.get(f"{gateway_url}/health/items/42", timeout=10).status_code == 200
    assert s.get(f"{gateway_url}/health/nothing", timeout=10).status_code == 404
    assert s.post(f"{gateway_url}/health/ping", timeout=10).status_code == 404
    assert s.get(f"{gateway_url}/unknown/ping", timeout=10).json() == {
        "statusCode": 404,
        "message": "Resource not found",
    }
    regional = s.get("https://apim-contoso-prod-westeurope-01.regional.azure-api.net/health/ping", timeout=10)
    assert regional.status_code == 200


def test_gateway_wants_a_subscription_key_where_the_api_requires_one(configured: ApimEmulator) -> None:
    s = session(configured)
    url = "https://apim-contoso-dr.azure-api.net/orders/"
    missing = s.get(url, timeout=10)
    assert missing.status_code == 401 and "missing subscription key" in missing.json()["message"]
    assert s.get(url, headers={"Ocp-Apim-Subscription-Key": "wrong"}, timeout=10).status_code == 401
    assert s.get(url, headers={"Ocp-Apim-Subscription-Key": "probe-key-2"}, timeout=10).status_code == 200


def test_unknown_instance_does_not_resolve(configured: ApimEmulator) -> None:
    with pytest.raises(requests.exceptions.ProxyError):
        session(configured).get("https://apim-nowhere.azure-api.net/health/ping", timeout=10)


def test_custom_hostname_follows_dns_and_serves_the_key_vault_certificate(configured: ApimEmulator) -> None:
    s = session(configured)
    # The seed binds api.contoso.com on prod with kv-contoso-apim's certificate; contoso.com's CNAME points there.
    first = s.get("https://api.contoso.com/health/ping", timeout=10)
    assert first.status_code == 200 and first.headers["x-apim-dr-served-by"] == PROD
    with apim(configured) as client:
        client.api_management_service.begin_update(
            DR_RG,
            DR,
            {
                "properties": {
                    "hostnameConfigurations": [
                        {
                            "type": "Proxy",
                            "hostName": "api.contoso.com",
                            "keyVaultId": f"{DR_VAULT_URL}/secrets/api-contoso-com",
                        }
                    ]
                }
            },
        ).result()
    from azure.mgmt.dns import DnsManagementClient

    dns_client: Any = DnsManagementClient
    with dns_client(
        IdentityCredential(configured), SUB, base_url=configured.arm_url, connection_verify=str(configured.ca_bundle)
    ) as dns:
        dns.record_sets.create_or_update(
            PROD_RG,
            "contoso.com",
            "api",
            "CNAME",
            {"properties": {"TTL": 60, "CNAMERecord": {"cname": "apim-contoso-dr.azure-api.net"}}},
        )
    s2 = session(configured)  # a new connection: DNS answers are per connection
    after = s2.get("https://api.contoso.com/health/ping", timeout=10)
    assert after.status_code == 200 and after.headers["x-apim-dr-served-by"] == DR


def test_region_outage(configured: ApimEmulator) -> None:
    s = session(configured)
    configured.admin._call("POST", "/regions/westeurope/down")
    with apim(configured, retry_total=0) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.api_management_service.get(PROD_RG, PROD)
        assert caught.value.status_code == 504
        assert caught.value.error is not None and caught.value.error.code == "GatewayTimeout"
        assert "'Microsoft.ApiManagement'" in str(caught.value)
        response: Any = caught.value.response
        assert response.headers["x-ms-failure-cause"] == "service"
        assert client.api_management_service.get(DR_RG, DR).provisioning_state == "Succeeded"  # the other region
        with pytest.raises(HttpResponseError) as backup:
            client.api_management_service.begin_backup(
                PROD_RG,
                PROD,
                {"storageAccount": "apimdrbackups", "containerName": "c", "backupName": "b"},
                polling=False,
            )
        assert backup.value.status_code == 504
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get("https://apim-contoso-prod.azure-api.net/health/ping", timeout=10)
    assert session(configured).get("https://apim-contoso-dr.azure-api.net/health/ping", timeout=10).status_code == 200
    # Traffic Manager skips the unreachable endpoint: www.contoso.com -> contoso-api.trafficmanager.net -> DR's
    # gateway, which binds no www.contoso.com: the tunnel opens (no ProxyError) and TLS fails on the name.
    with pytest.raises(requests.exceptions.SSLError):
        session(configured).get("https://www.contoso.com/health/ping", timeout=10)
    # Global resources stay reachable.
    with CdnManagementClient(
        IdentityCredential(configured), SUB, base_url=configured.arm_url, connection_verify=str(configured.ca_bundle)
    ) as cdn:
        assert cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "prod").name == "prod"
    configured.admin._call("POST", "/regions/westeurope/up")
    with apim(configured, retry_total=0) as client:
        assert client.api_management_service.get(PROD_RG, PROD).name == PROD
    assert session(configured).get("https://apim-contoso-prod.azure-api.net/health/ping", timeout=10).status_code == 200


def test_region_outage_needs_authentication_first(configured: ApimEmulator) -> None:
    configured.admin._call("POST", "/regions/westeurope/down")
    anonymous = requests.get(
        f"{configured.arm_url}/subscriptions/{SUB}/resourceGroups/{PROD_RG}/providers/"
        f"Microsoft.ApiManagement/service/{PROD}?api-version=2024-05-01",
        verify=str(configured.ca_bundle),
        timeout=10,
    )
    assert anonymous.status_code == 401


def test_storage_outage_fails_backups_on_poll(configured: ApimEmulator) -> None:
    configured.admin._call("POST", "/regions/northeurope/down", {"arm": False, "gateway": False, "storage": True})
    with apim(configured) as client, pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_backup(
            PROD_RG,
            PROD,
            {
                "storageAccount": "apimdrbackups",
                "containerName": "apim-backups",
                "backupName": "during-outage",
                "accessType": "SystemAssignedManagedIdentity",
            },
        ).result()
    assert "could not be reached" in str(caught.value) and "northeurope" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [{"arm": "yes"}, {"everything": True}],
)
def test_region_admin_bad_input(emu: ApimEmulator, body: dict[str, Any]) -> None:
    from emulator.apim import EmulatorAdminError

    with pytest.raises(EmulatorAdminError):
        emu.admin._call("POST", "/regions/westeurope/down", body)
    with pytest.raises(EmulatorAdminError):
        emu.admin._call("POST", "/regions/atlantis/down", {})


def test_outages_are_cleared_by_reset(emu: ApimEmulator) -> None:
    emu.admin._call("POST", "/regions/westeurope/down")
    assert emu.admin._call("GET", "/regions")["value"][0]["region"] == "westeurope"
    emu.admin.reset()
    assert emu.admin._call("GET", "/regions")["value"] == []


def test_service_error_on_unreachable_gateway_through_azure_core(configured: ApimEmulator) -> None:
    """What the app's health check sees through azure-core when the gateway's region is down."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import ProxyPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    url = "https://apim-contoso-prod.azure-api.net/health/ping"
    transport = RequestsTransport(connection_verify=str(configured.ca_bundle), use_env_settings=False)
    policies = [ProxyPolicy(proxies={"https": configured.proxy_url})]
    pipeline: Any
    with PipelineClient("https://apim-contoso-prod.azure-api.net", transport=transport, policies=policies) as pipeline:
        assert pipeline.send_request(HttpRequest("GET", url)).status_code == 200
        configured.admin._call("POST", "/regions/westeurope/down")
        with pytest.raises(ServiceRequestError):
            pipeline.send_request(HttpRequest("GET", url))
