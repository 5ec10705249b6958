"""APIM service PATCH/PUT through azure-mgmt-apimanagement: hostnames from Key Vault read with the
instance's identity, protocols and ciphers, identities, CA certificates, the update lock."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.mgmt.apimanagement import ApiManagementClient
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from standins_support import DR, DR_RG, DR_UA_CLIENT_ID, DR_VAULT_URL, PROD, PROD_RG, SUB, VAULT_URL, IdentityCredential

from emulator.apim import ApimEmulator

TLS10 = "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10"
TLS11 = "Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls11"


def apim(emu: ApimEmulator, **extra: Any) -> Any:  # Any: the tests send plain dict bodies
    return ApiManagementClient(
        IdentityCredential(emu),
        SUB,
        base_url=emu.arm_url,
        connection_verify=str(emu.ca_bundle),
        polling_interval=0.1,
        **extra,
    )


def custom_host(key_vault_id: str, client_id: str | None = None) -> dict[str, Any]:
    entry = {
        "type": "Proxy",
        "hostName": "api.contoso.com",
        "keyVaultId": key_vault_id,
        "certificateSource": "KeyVault",
        "defaultSslBinding": True,
    }
    if client_id:
        entry["identityClientId"] = client_id
    return entry


def default_host(name: str) -> dict[str, Any]:
    return {"type": "Proxy", "hostName": f"{name}.azure-api.net", "certificateSource": "BuiltIn"}


@pytest.fixture(autouse=True)
def open_rbac(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)


def test_hostname_from_key_vault_read_with_the_system_identity(emu: ApimEmulator) -> None:
    with apim(emu) as client:
        poller = client.api_management_service.begin_update(
            DR_RG,
            DR,
            {
                "properties": {
                    "hostnameConfigurations": [default_host(DR), custom_host(f"{DR_VAULT_URL}/secrets/api-contoso-com")]
                }
            },
        )
        assert client.api_management_service.get(DR_RG, DR).provisioning_state == "Updating"
        result = poller.result()
    bound = next(h for h in result.hostname_configurations if h.host_name == "api.contoso.com")
    vault_cert = emu.admin._call("GET", "/keyvaults/kv-contoso-dr")["certificates"]["api-contoso-com"][-1]
    assert bound.certificate.thumbprint == vault_cert["thumbprint"]
    assert bound.certificate.subject == "CN=api.contoso.com"
    assert bound.certificate_source == "KeyVault" and bound.key_vault_id.endswith("/secrets/api-contoso-com")
    assert result.provisioning_state == "Succeeded"


def test_hostname_refused_when_the_identity_cannot_read_the_certificate(emu: ApimEmulator) -> None:
    # DR's system-assigned identity has no role on the primary's vault.
    with apim(emu) as client, pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_update(
            DR_RG, DR, {"properties": {"hostnameConfigurations": [custom_host(f"{VAULT_URL}/secrets/api-contoso-com")]}}
        ).result()
    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "InvalidParameters"
    assert "Failed to access KeyVault Secret" in str(caught.value) and "16939f58-bc5a-4a0c-b28b-e600aab4a73a" in str(
        caught.value
    )
    svc = emu.admin.service(DR)
    assert svc["provisioningState"] == "Succeeded" and svc["activeOperation"] is None
    assert all(h["hostName"] != "api.contoso.com" for h in svc["hostnameConfigurations"])


def test_user_assigned_identity_with_certificate_user_role_is_used_when_named(emu: ApimEmulator) -> None:
    with apim(emu) as client:
        result = client.api_management_service.begin_update(
            DR_RG,
            DR,
            {
                "properties": {
                    "hostnameConfigurations": [custom_host(f"{VAULT_URL}/secrets/api-contoso-com", DR_UA_CLIENT_ID)]
                }
            },
        ).result()
    assert any(
        h.host_name == "api.contoso.com" and h.identity_client_id == DR_UA_CLIENT_ID
        for h in result.hostname_configurations
    )


def test_granting_the_role_makes_the_same_update_pass(emu: ApimEmulator) -> None:
    body = {"properties": {"hostnameConfigurations": [custom_host(f"{VAULT_URL}/secrets/api-contoso-com")]}}
    with apim(emu) as client:
        with pytest.raises(HttpResponseError):
            client.api_management_service.begin_update(DR_RG, DR, body).result()
        emu.admin._call(
            "POST",
            "/keyvaults/kv-contoso-apim/role-assignments",
            {"principalId": "16939f58-bc5a-4a0c-b28b-e600aab4a73a", "role": "Key Vault Secrets User"},
        )
        result = client.api_management_service.begin_update(DR_RG, DR, body).result()
    assert any(h.host_name == "api.contoso.com" for h in result.hostname_configurations)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"type": "Proxy", "hostName": "api.contoso.com"}, "Either encodedCertificate or keyVaultId"),
        (custom_host(f"{DR_VAULT_URL}/certificates/api-contoso-com"), "only accepts KeyVault Secrets"),
        (custom_host(f"{DR_VAULT_URL}/secrets/no-such-cert"), "SecretNotFound"),
        (custom_host("https://evil.example.com/secrets/x"), "not a Key Vault URL"),
        (
            custom_host(f"{DR_VAULT_URL}/secrets/api-contoso-com", "00000000-0000-0000-0000-000000000001"),
            "Can not find Managed Identity",
        ),
        ({"type": "Gateway", "hostName": "api.contoso.com"}, "was not found"),
        ({"type": "Proxy", "hostName": "bad host/../x"}, "not a valid host name"),
    ],
)
def test_hostname_bad_input(emu: ApimEmulator, entry: dict[str, Any], fragment: str) -> None:
    with apim(emu) as client, pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_update(
            DR_RG, DR, {"properties": {"hostnameConfigurations": [entry]}}
        ).result()
    assert caught.value.status_code == 400
    assert fragment in str(caught.value)


def test_vault_region_outage_refuses_the_hostname(emu: ApimEmulator) -> None:
    emu.admin._call("POST", "/regions/northeurope/down", {"arm": False, "gateway": False, "keyVault": True})
    with apim(emu) as client, pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_update(
            DR_RG,
            DR,
            {"properties": {"hostnameConfigurations": [custom_host(f"{DR_VAULT_URL}/secrets/api-contoso-com")]}},
        ).result()
    assert "does not answer" in str(caught.value)


def test_hostname_bound_elsewhere_is_allowed_unless_exclusive(emu: ApimEmulator) -> None:
    # The prod instance already binds api.contoso.com (seed).
    body = {"properties": {"hostnameConfigurations": [custom_host(f"{DR_VAULT_URL}/secrets/api-contoso-com")]}}
    emu.admin._call("PATCH", "/standin-settings", {"exclusiveHostnames": True})
    with apim(emu) as client:
        with pytest.raises(ResourceExistsError) as caught:
            client.api_management_service.begin_update(DR_RG, DR, body).result()
        assert "already bound to API Management service 'apim-contoso-prod'" in str(caught.value)
        emu.admin._call("PATCH", "/standin-settings", {"exclusiveHostnames": False})
        client.api_management_service.begin_update(DR_RG, DR, body).result()


def test_custom_properties_merge_and_validate(emu: ApimEmulator) -> None:
    with apim(emu) as client:
        result = client.api_management_service.begin_update(
            PROD_RG, PROD, {"properties": {"customProperties": {TLS11: "true"}}}
        ).result()
        assert result.custom_properties[TLS11] == "True" and result.custom_properties[TLS10] == "False"
        with pytest.raises(HttpResponseError) as caught:
            client.api_management_service.begin_update(
                PROD_RG, PROD, {"properties": {"customProperties": {TLS10: "maybe"}}}
            ).result()
        assert caught.value.status_code == 400
        with pytest.raises(HttpResponseError):
            client.api_management_service.begin_update(
                PROD_RG, PROD, {"properties": {"customProperties": {"Evil.Key": "True"}}}
            ).result()


def test_update_locks_the_service_like_backup(emu: ApimEmulator) -> None:
    emu.admin.set_op_duration(30, service=PROD)
    with apim(emu, retry_total=0) as client:
        client.api_management_service.begin_update(
            PROD_RG, PROD, {"properties": {"customProperties": {TLS11: "True"}}}, polling=False
        )
        with pytest.raises(ResourceExistsError) as caught:
            client.api_management_service.begin_backup(
                PROD_RG,
                PROD,
                {
                    "storageAccount": "apimdrbackups",
                    "containerName": "apim-backups",
                    "backupName": "b1",
                    "accessType": "SystemAssignedManagedIdentity",
                },
                polling=False,
            )
        assert caught.value.error is not None and caught.value.error.code == "ServiceLocked"
        with pytest.raises(ResourceExistsError):
            client.api_management_service.begin_update(PROD_RG, PROD, {"tags": {"x": "y"}}, polling=False)
    emu.admin.advance_clock(31)
    assert emu.admin.service(PROD)["provisioningState"] == "Succeeded"
    assert emu.admin.service(PROD)["customProperties"][TLS11] == "True"


def test_tags_only_change_answers_at_once(emu: ApimEmulator) -> None:
    with apim(emu) as client:
        result = client.api_management_service.begin_update(PROD_RG, PROD, {"tags": {"owner": "dr-team"}}).result()
    assert result.tags == {"owner": "dr-team"}
    patches = emu.admin.requests(method="PATCH")
    assert patches[-1]["status"] == 200
    assert not emu.admin.operations(PROD)


def test_identity_and_ca_certificates_and_vnet_recorded(emu: ApimEmulator, tmp_path: Any) -> None:
    ca = x509.load_pem_x509_certificate(emu.ca_bundle.read_bytes())
    der = base64.b64encode(ca.public_bytes(serialization.Encoding.DER)).decode()
    uai = (
        f"/subscriptions/{SUB}/resourceGroups/{DR_RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-new"
    )
    subnet = (
        f"/subscriptions/{SUB}/resourceGroups/{DR_RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apim"
    )
    with apim(emu) as client:
        result = client.api_management_service.begin_update(
            DR_RG,
            DR,
            {
                "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai: {}}},
                "properties": {
                    "certificates": [{"storeName": "Root", "encodedCertificate": der}],
                    "virtualNetworkType": "External",
                    "virtualNetworkConfiguration": {"subnetResourceId": subnet},
                },
            },
        ).result()
        assert result.identity.principal_id == "16939f58-bc5a-4a0c-b28b-e600aab4a73a"  # kept
        assert result.identity.user_assigned_identities[uai].client_id
        assert result.certificates[0].store_name == "Root" and result.certificates[0].encoded_certificate is None
        assert result.virtual_network_type == "External"
        assert result.virtual_network_configuration.subnet_resource_id == subnet
        with pytest.raises(HttpResponseError):
            client.api_management_service.begin_update(
                DR_RG,
                DR,
                {"properties": {"certificates": [{"storeName": "Root", "encodedCertificate": "bm90IGEgY2VydA=="}]}},
            ).result()


def test_put_of_an_existing_service_is_long_running_and_creating_is_not_emulated(emu: ApimEmulator) -> None:
    with apim(emu) as client:
        current = client.api_management_service.get(PROD_RG, PROD)
        current.custom_properties[TLS11] = "True"
        result = client.api_management_service.begin_create_or_update(PROD_RG, PROD, current).result()
        assert result.custom_properties[TLS11] == "True"
        current.name = None
        with pytest.raises(HttpResponseError) as caught:
            client.api_management_service.begin_create_or_update(PROD_RG, "apim-brand-new", current).result()
        assert caught.value.status_code == 405


def test_oversized_and_malformed_bodies(emu: ApimEmulator) -> None:
    with apim(emu, retry_total=0) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.api_management_service.begin_update(PROD_RG, PROD, {"tags": {"k": "v" * 300}}).result()
        assert caught.value.status_code == 400
        huge = {"properties": {"hostnameConfigurations": [default_host(PROD)] * 50}}
        with pytest.raises(HttpResponseError) as caught:
            client.api_management_service.begin_update(PROD_RG, PROD, huge).result()
        assert caught.value.status_code == 400


def test_update_needs_service_write(emu: ApimEmulator) -> None:
    from standins_support import FUNC_SYSTEM

    emu.admin.set_arm_roles(
        {
            FUNC_SYSTEM["principalId"]: [
                {"actions": ["Microsoft.ApiManagement/service/read"], "scope": f"/subscriptions/{SUB}"}
            ]
        }
    )
    with apim(emu) as client, pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_update(PROD_RG, PROD, {"tags": {"a": "b"}}).result()
    assert caught.value.status_code == 403 and "Microsoft.ApiManagement/service/write" in str(caught.value)


def test_backup_omits_and_restore_keeps_the_reapplied_settings(emu: ApimEmulator) -> None:
    params = {
        "storageAccount": "apimdrbackups",
        "containerName": "apim-backups",
        "backupName": "prod-before-failover",
        "accessType": "SystemAssignedManagedIdentity",
    }
    with apim(emu) as client:
        client.api_management_service.begin_update(
            DR_RG,
            DR,
            {
                "properties": {
                    "hostnameConfigurations": [custom_host(f"{DR_VAULT_URL}/secrets/api-contoso-com")],
                    "customProperties": {TLS11: "True"},
                }
            },
        ).result()
        client.api_management_service.begin_backup(PROD_RG, PROD, params).result()
        restored = client.api_management_service.begin_restore(DR_RG, DR, params).result()
    assert any(h.host_name == "api.contoso.com" for h in restored.hostname_configurations)
    assert restored.custom_properties[TLS11] == "True"
