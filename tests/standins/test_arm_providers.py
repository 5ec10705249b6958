"""Front Door origins, Traffic Manager endpoints, DNS CNAME record sets and diagnostic settings at the
emulator's ARM endpoint, through azure-mgmt-cdn, azure-mgmt-trafficmanager, azure-mgmt-dns and
azure-mgmt-monitor, with ARM's path-derived RBAC."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.cdn import CdnManagementClient
from azure.mgmt.dns import DnsManagementClient
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.trafficmanager import TrafficManagerManagementClient
from standins_support import (
    AFD_GROUP,
    AFD_PROFILE,
    AFD_RG,
    FUNC_SYSTEM,
    PROD,
    PROD_RG,
    SUB,
    TM_PROFILE,
    IdentityCredential,
)

from emulator.apim import ApimEmulator

PRINCIPAL = FUNC_SYSTEM["principalId"]
SCOPE = f"/subscriptions/{SUB}"
SERVICE_ID = f"/subscriptions/{SUB}/resourceGroups/{PROD_RG}/providers/Microsoft.ApiManagement/service/{PROD}"


def grant(emu: ApimEmulator, *actions: str, scope: str = SCOPE) -> None:
    emu.admin.set_arm_roles({PRINCIPAL: [{"actions": list(actions), "scope": scope}]})


def mgmt(emu: ApimEmulator, cls: Any, **extra: Any) -> Any:
    return cls(
        IdentityCredential(emu),
        SUB,
        base_url=emu.arm_url,
        connection_verify=str(emu.ca_bundle),
        polling_interval=0.1,
        **extra,
    )


# -- Front Door ------------------------------------------------------------------------------------
def test_front_door_origin_switch_is_a_long_running_update(emu: ApimEmulator) -> None:
    grant(
        emu,
        "Microsoft.Cdn/profiles/originGroups/origins/read",
        "Microsoft.Cdn/profiles/originGroups/origins/write",
        "Microsoft.Cdn/operationresults/read",
    )
    with mgmt(emu, CdnManagementClient) as cdn:
        origins = {o.name: o for o in cdn.afd_origins.list_by_origin_group(AFD_RG, AFD_PROFILE, AFD_GROUP)}
        assert origins["dr"].enabled_state == "Disabled" and origins["prod"].priority == 1
        poller = cdn.afd_origins.begin_update(
            AFD_RG, AFD_PROFILE, AFD_GROUP, "dr", {"properties": {"enabledState": "Enabled", "priority": 1}}
        )
        assert cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "dr").provisioning_state == "Updating"
        result = poller.result()
        assert result.enabled_state == "Enabled" and result.priority == 1
        assert result.provisioning_state == "Succeeded"
        assert result.host_name == "apim-contoso-dr.azure-api.net"  # a PATCH keeps what it does not name
        cdn.afd_origins.begin_update(
            AFD_RG, AFD_PROFILE, AFD_GROUP, "prod", {"properties": {"enabledState": "Disabled"}}
        ).result()
        assert cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "prod").enabled_state == "Disabled"
    monitors = emu.admin.requests(path_contains="/providers/Microsoft.Cdn/operationresults/")
    assert monitors and all(r["status"] == 200 for r in monitors)


def test_front_door_write_needs_write_action(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.Cdn/profiles/originGroups/origins/read")
    with mgmt(emu, CdnManagementClient) as cdn:
        assert cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "prod").name == "prod"
        with pytest.raises(HttpResponseError) as caught:
            cdn.afd_origins.begin_update(
                AFD_RG, AFD_PROFILE, AFD_GROUP, "dr", {"properties": {"enabledState": "Enabled"}}
            ).result()
    assert caught.value.status_code == 403
    assert "'Microsoft.Cdn/profiles/originGroups/origins/write'" in str(caught.value)
    assert emu.admin._call("GET", "/arm-resources")["value"]  # nothing was changed:
    dr = next(
        r for r in emu.admin._call("GET", "/arm-resources")["value"] if r["name"] == "dr" and "origins" in r["type"]
    )
    assert dr["properties"]["enabledState"] == "Disabled"


def test_front_door_read_needs_read_action(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.ApiManagement/service/read")
    with mgmt(emu, CdnManagementClient) as cdn, pytest.raises(HttpResponseError) as caught:
        cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "prod")
    assert caught.value.status_code == 403
    assert "Microsoft.Cdn/profiles/originGroups/origins/read" in str(caught.value)


@pytest.mark.parametrize(
    "properties",
    [{"priority": 6}, {"weight": 0}, {"enabledState": "On"}, {"httpsPort": 70000}, {"hostName": "bad host!"}],
)
def test_front_door_bad_origin_values_are_refused(emu: ApimEmulator, properties: dict[str, Any]) -> None:
    emu.admin.set_arm_roles(None)
    with mgmt(emu, CdnManagementClient) as cdn, pytest.raises(HttpResponseError) as caught:
        cdn.afd_origins.begin_update(AFD_RG, AFD_PROFILE, AFD_GROUP, "dr", {"properties": properties}).result()
    assert caught.value.status_code == 400


def test_front_door_unknown_origin_and_hostile_names(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)
    with mgmt(emu, CdnManagementClient, retry_total=0) as cdn:
        with pytest.raises(ResourceNotFoundError):
            cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "nope")
        with pytest.raises(ResourceNotFoundError):
            cdn.afd_origins.get(AFD_RG, "no-profile", AFD_GROUP, "prod")
        with pytest.raises(HttpResponseError) as caught:
            cdn.afd_origins.get(AFD_RG, AFD_PROFILE, AFD_GROUP, "a%3Cscript%3E")
        assert caught.value.status_code == 400


def test_front_door_oversized_body_is_refused(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)
    with mgmt(emu, CdnManagementClient, retry_total=0) as cdn, pytest.raises(HttpResponseError) as caught:
        cdn.afd_origins.begin_update(
            AFD_RG,
            AFD_PROFILE,
            AFD_GROUP,
            "dr",
            {"properties": {"originHostHeader": "a.example.com"}, "padding": "x" * 100_000},
        ).result()
    assert caught.value.status_code == 413


# -- Traffic Manager -------------------------------------------------------------------------------
def test_traffic_manager_priority_swap(emu: ApimEmulator) -> None:
    grant(
        emu,
        "Microsoft.Network/trafficManagerProfiles/read",
        "Microsoft.Network/trafficManagerProfiles/externalEndpoints/*",
    )
    with mgmt(emu, TrafficManagerManagementClient) as tm:
        profile = tm.profiles.get(PROD_RG, TM_PROFILE)
        assert {e.name: e.priority for e in profile.endpoints} == {"prod": 1, "dr": 2}
        with pytest.raises(HttpResponseError) as caught:  # priorities are unique within a profile
            tm.endpoints.update(PROD_RG, TM_PROFILE, "ExternalEndpoints", "dr", {"properties": {"priority": 1}})
        assert caught.value.status_code == 400 and "unique" in str(caught.value)
        tm.endpoints.update(PROD_RG, TM_PROFILE, "ExternalEndpoints", "prod", {"properties": {"priority": 3}})
        tm.endpoints.update(PROD_RG, TM_PROFILE, "ExternalEndpoints", "dr", {"properties": {"priority": 1}})
        disabled = tm.endpoints.update(
            PROD_RG, TM_PROFILE, "ExternalEndpoints", "prod", {"properties": {"endpointStatus": "Disabled"}}
        )
        assert disabled.endpoint_status == "Disabled" and disabled.target == "apim-contoso-prod.azure-api.net"
        assert tm.endpoints.get(PROD_RG, TM_PROFILE, "ExternalEndpoints", "dr").priority == 1


def test_traffic_manager_write_refused_without_role(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.Network/trafficManagerProfiles/*/read")
    with mgmt(emu, TrafficManagerManagementClient) as tm:
        assert tm.endpoints.get(PROD_RG, TM_PROFILE, "ExternalEndpoints", "dr").priority == 2
        with pytest.raises(HttpResponseError) as caught:
            tm.endpoints.update(PROD_RG, TM_PROFILE, "ExternalEndpoints", "dr", {"properties": {"priority": 5}})
    assert caught.value.status_code == 403
    assert "Microsoft.Network/trafficManagerProfiles/externalEndpoints/write" in str(caught.value)


@pytest.mark.parametrize(
    "properties", [{"priority": 0}, {"priority": 1001}, {"endpointStatus": "Off"}, {"weight": "heavy"}]
)
def test_traffic_manager_bad_values(emu: ApimEmulator, properties: dict[str, Any]) -> None:
    emu.admin.set_arm_roles(None)
    with mgmt(emu, TrafficManagerManagementClient) as tm, pytest.raises(HttpResponseError) as caught:
        tm.endpoints.update(PROD_RG, TM_PROFILE, "ExternalEndpoints", "dr", {"properties": properties})
    assert caught.value.status_code == 400


# -- DNS -------------------------------------------------------------------------------------------
def test_dns_cname_switch_with_etags(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.Network/dnszones/CNAME/read", "Microsoft.Network/dnszones/CNAME/write")
    with mgmt(emu, DnsManagementClient) as dns:
        current = dns.record_sets.get(PROD_RG, "contoso.com", "api", "CNAME")
        assert current.cname_record.cname == "apim-contoso-prod.azure-api.net" and current.etag
        body = {"properties": {"TTL": 60, "CNAMERecord": {"cname": "apim-contoso-dr.azure-api.net"}}}
        with pytest.raises(HttpResponseError) as stale:
            dns.record_sets.create_or_update(PROD_RG, "contoso.com", "api", "CNAME", body, if_match="not-the-etag")
        assert stale.value.status_code == 412
        with pytest.raises(HttpResponseError) as exists:
            dns.record_sets.create_or_update(PROD_RG, "contoso.com", "api", "CNAME", body, if_none_match="*")
        assert exists.value.status_code == 412
        assert (
            dns.record_sets.get(PROD_RG, "contoso.com", "api", "CNAME").cname_record.cname
            == "apim-contoso-prod.azure-api.net"
        )
        switched = dns.record_sets.create_or_update(PROD_RG, "contoso.com", "api", "CNAME", body, if_match=current.etag)
        assert switched.cname_record.cname == "apim-contoso-dr.azure-api.net" and switched.etag != current.etag
        created = dns.record_sets.create_or_update(PROD_RG, "contoso.com", "new", "CNAME", body, if_none_match="*")
        assert created.fqdn == "new.contoso.com."


def test_dns_write_refused_without_role(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.Network/dnszones/CNAME/read")
    body = {"properties": {"TTL": 60, "CNAMERecord": {"cname": "apim-contoso-dr.azure-api.net"}}}
    with mgmt(emu, DnsManagementClient) as dns, pytest.raises(HttpResponseError) as caught:
        dns.record_sets.create_or_update(PROD_RG, "contoso.com", "api", "CNAME", body)
    assert caught.value.status_code == 403
    assert "Microsoft.Network/dnszones/CNAME/write" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("api", {"properties": {"TTL": -1, "CNAMERecord": {"cname": "x.example.com"}}}),
        ("api", {"properties": {"TTL": 60, "CNAMERecord": {"cname": "not a host"}}}),
        ("api", {"properties": {"TTL": 60}}),
        ("@", {"properties": {"TTL": 60, "CNAMERecord": {"cname": "x.example.com"}}}),
        ("a" * 70, {"properties": {"TTL": 60, "CNAMERecord": {"cname": "x.example.com"}}}),
    ],
)
def test_dns_bad_input(emu: ApimEmulator, name: str, body: dict[str, Any]) -> None:
    emu.admin.set_arm_roles(None)
    with mgmt(emu, DnsManagementClient) as dns, pytest.raises(HttpResponseError) as caught:
        dns.record_sets.create_or_update(PROD_RG, "contoso.com", name, "CNAME", body)
    assert caught.value.status_code == 400


# -- diagnostic settings ---------------------------------------------------------------------------
def test_diagnostic_settings_on_the_service(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.Insights/diagnosticSettings/*")
    workspace = (
        f"/subscriptions/{SUB}/resourceGroups/{PROD_RG}/providers/Microsoft.OperationalInsights/workspaces/law-contoso"
    )
    body = {
        "properties": {
            "workspaceId": workspace,
            "logs": [{"category": "GatewayLogs", "enabled": True}],
            "metrics": [{"category": "AllMetrics", "enabled": True}],
        }
    }
    with mgmt(emu, MonitorManagementClient) as monitor:
        assert list(monitor.diagnostic_settings.list(SERVICE_ID)) == []
        created = monitor.diagnostic_settings.create_or_update(SERVICE_ID, "to-law", body)
        assert created.workspace_id == workspace
        got = monitor.diagnostic_settings.get(SERVICE_ID, "to-law")
        assert got.logs[0].category == "GatewayLogs"
        assert [s.name for s in monitor.diagnostic_settings.list(SERVICE_ID)] == ["to-law"]
        with pytest.raises(ResourceNotFoundError):
            monitor.diagnostic_settings.get(SERVICE_ID, "missing")


@pytest.mark.parametrize(
    "properties",
    [
        {"logs": [{"category": "GatewayLogs", "enabled": True}]},  # no destination
        {"workspaceId": "/x", "logs": [{"category": "SecretLogs", "enabled": True}]},
        {"workspaceId": "/x", "metrics": [{"category": "CpuOnly", "enabled": True}]},
    ],
)
def test_diagnostic_settings_bad_input(emu: ApimEmulator, properties: dict[str, Any]) -> None:
    emu.admin.set_arm_roles(None)
    with mgmt(emu, MonitorManagementClient) as monitor, pytest.raises(HttpResponseError) as caught:
        monitor.diagnostic_settings.create_or_update(SERVICE_ID, "bad", {"properties": properties})
    assert caught.value.status_code == 400


def test_diagnostic_settings_need_their_action_and_an_existing_service(emu: ApimEmulator) -> None:
    grant(emu, "Microsoft.ApiManagement/service/*")
    with mgmt(emu, MonitorManagementClient) as monitor:
        with pytest.raises(HttpResponseError) as caught:
            list(monitor.diagnostic_settings.list(SERVICE_ID))
        assert caught.value.status_code == 403
        assert "Microsoft.Insights/diagnosticSettings/read" in str(caught.value)
        emu.admin.set_arm_roles(None)
        with pytest.raises(ResourceNotFoundError):
            list(monitor.diagnostic_settings.list(SERVICE_ID.replace(PROD, "apim-nowhere")))
