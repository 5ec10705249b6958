"""The Key Vault stand-in through the official azure-keyvault-secrets client (and azure-keyvault-certificates)."""

from __future__ import annotations

import base64

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs12
from standins_support import FUNC_SYSTEM, FUNC_UA, VAULT_URL, IdentityCredential, client_kwargs, token

from emulator.apim import ApimEmulator


def secret_client(emu: ApimEmulator, client_id: str | None = None, **extra: object) -> SecretClient:
    return SecretClient(VAULT_URL, IdentityCredential(emu, client_id), **client_kwargs(emu, **extra))


def test_granted_identity_reads_the_secret_value(emu: ApimEmulator) -> None:
    credential = IdentityCredential(emu, FUNC_UA["clientId"])
    with SecretClient(VAULT_URL, credential, **client_kwargs(emu)) as client:
        secret = client.get_secret("partner-signing-key")
    assert secret.value == "emulator-only-signing-key"
    assert (secret.id or "").startswith(f"{VAULT_URL}/secrets/partner-signing-key/")
    assert credential.scopes == ["https://vault.azure.net/.default"]  # from the 401 challenge


def test_identity_without_a_role_gets_forbidden_by_rbac(emu: ApimEmulator) -> None:
    with secret_client(emu) as client, pytest.raises(HttpResponseError) as caught:
        client.get_secret("partner-signing-key")
    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "Forbidden"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in str(caught.value)


def test_versions_are_listed_and_each_version_is_readable(emu: ApimEmulator) -> None:
    first = emu.admin._call("POST", "/keyvaults/kv-contoso-apim/secrets", {"name": "rotated", "value": "one"})
    emu.admin._call("POST", "/keyvaults/kv-contoso-apim/secrets", {"name": "rotated", "value": "two"})
    with secret_client(emu, FUNC_UA["clientId"]) as client:
        versions = list(client.list_properties_of_secret_versions("rotated"))
        assert len(versions) == 2
        assert client.get_secret("rotated").value == "two"
        assert client.get_secret("rotated", first["version"]).value == "one"
        names = {p.name for p in client.list_properties_of_secrets()}
    assert {"rotated", "partner-signing-key", "api-contoso-com"} <= names


def test_metadata_role_lists_but_cannot_read_values(emu: ApimEmulator) -> None:
    emu.admin._call(
        "POST",
        "/keyvaults/kv-contoso-apim/role-assignments",
        {"principalId": FUNC_SYSTEM["principalId"], "role": "Key Vault Reader"},
    )
    with secret_client(emu) as client:
        assert [p.name for p in client.list_properties_of_secret_versions("partner-signing-key")] == [
            "partner-signing-key"
        ]
        with pytest.raises(HttpResponseError) as caught:
            client.get_secret("partner-signing-key")
    assert caught.value.status_code == 403


def test_assignment_scoped_to_one_secret_covers_only_that_secret(emu: ApimEmulator) -> None:
    emu.admin._call(
        "POST",
        "/keyvaults/kv-contoso-apim/role-assignments",
        {
            "principalId": FUNC_SYSTEM["principalId"],
            "role": "Key Vault Secrets User",
            "scope": "secrets/partner-signing-key",
        },
    )
    with secret_client(emu) as client:
        assert client.get_secret("partner-signing-key").value == "emulator-only-signing-key"
        with pytest.raises(HttpResponseError) as caught:
            client.get_secret("api-contoso-com")
    assert caught.value.status_code == 403


def test_revoked_role_is_refused_again(emu: ApimEmulator) -> None:
    with secret_client(emu, FUNC_UA["clientId"]) as client:
        client.get_secret("partner-signing-key")
        emu.admin._call("DELETE", f"/keyvaults/kv-contoso-apim/role-assignments/{FUNC_UA['principalId']}")
        with pytest.raises(HttpResponseError) as caught:
            client.get_secret("partner-signing-key")
    assert caught.value.status_code == 403


def test_certificate_is_stored_as_key_vault_does(emu: ApimEmulator) -> None:
    view = emu.admin._call("GET", "/keyvaults/kv-contoso-apim")
    cert = view["certificates"]["api-contoso-com"][-1]
    assert cert["secretId"] == f"{VAULT_URL}/secrets/api-contoso-com/{cert['version']}"
    with secret_client(emu, FUNC_UA["clientId"]) as client:
        secret = client.get_secret("api-contoso-com")
    assert secret.properties.content_type == "application/x-pkcs12"
    assert secret.properties.managed is True
    assert secret.id == cert["secretId"]
    _, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert leaf is not None and leaf.fingerprint(hashes.SHA1()).hex().upper() == cert["thumbprint"]
    assert leaf.subject.rfc4514_string() == "CN=api.contoso.com"


def test_certificate_client_reads_with_certificate_user(emu: ApimEmulator) -> None:
    from azure.keyvault.certificates import CertificateClient

    emu.admin._call(
        "POST",
        "/keyvaults/kv-contoso-apim/role-assignments",
        {"principalId": FUNC_SYSTEM["principalId"], "role": "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba"},
    )
    with CertificateClient(VAULT_URL, IdentityCredential(emu), **client_kwargs(emu)) as client:
        cert = client.get_certificate("api-contoso-com")
    assert cert.secret_id is not None and cert.secret_id.startswith(f"{VAULT_URL}/secrets/api-contoso-com/")
    assert cert.cer is not None and len(cert.cer) > 100


def test_missing_secret_and_version_are_not_found(emu: ApimEmulator) -> None:
    with secret_client(emu, FUNC_UA["clientId"]) as client:
        with pytest.raises(ResourceNotFoundError) as caught:
            client.get_secret("no-such-secret")
        assert caught.value.error is not None and caught.value.error.code == "SecretNotFound"
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("partner-signing-key", "0" * 32)


@pytest.mark.parametrize("name", ["bad_name", "a" * 128, "x.y", "caf\u00e9"])
def test_hostile_secret_names_are_bad_parameters(emu: ApimEmulator, name: str) -> None:
    with secret_client(emu, FUNC_UA["clientId"]) as client, pytest.raises(HttpResponseError) as caught:
        client.get_secret(name)
    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "BadParameter"


def test_oversized_secret_value_is_refused(emu: ApimEmulator) -> None:
    emu.admin._call(
        "POST",
        "/keyvaults/kv-contoso-apim/role-assignments",
        {"principalId": FUNC_SYSTEM["principalId"], "role": "Key Vault Secrets Officer"},
    )
    with secret_client(emu) as client:
        assert client.set_secret("small", "fits").value == "fits"
        with pytest.raises(HttpResponseError) as caught:
            client.set_secret("large", "x" * (26 * 1024))
    assert caught.value.status_code == 400
    assert "25 KB" in str(caught.value)


def test_set_secret_needs_its_own_action(emu: ApimEmulator) -> None:
    with secret_client(emu, FUNC_UA["clientId"]) as client, pytest.raises(HttpResponseError) as caught:
        client.set_secret("new-one", "value")
    assert caught.value.status_code == 403
    assert "setSecret/action" in str(caught.value)


def test_disabled_secret_is_forbidden(emu: ApimEmulator) -> None:
    emu.admin._call("PATCH", "/keyvaults/kv-contoso-apim/secrets/partner-signing-key", {"enabled": False})
    with secret_client(emu, FUNC_UA["clientId"]) as client, pytest.raises(HttpResponseError) as caught:
        client.get_secret("partner-signing-key")
    assert caught.value.status_code == 403
    assert "disabled" in str(caught.value)


def test_wrong_audience_and_missing_token_answer_the_challenge(emu: ApimEmulator) -> None:
    arm_token, _ = token(emu, "https://management.azure.com")
    session = requests.Session()
    session.trust_env = False  # only what is given here: the proxy and the emulator's CA bundle
    session.proxies = {"https": emu.proxy_url}
    session.verify = str(emu.ca_bundle)
    url = f"{VAULT_URL}/secrets/partner-signing-key?api-version=7.5"
    missing = session.get(url, timeout=10)
    assert missing.status_code == 401
    assert 'resource="https://vault.azure.net"' in missing.headers["WWW-Authenticate"]
    assert missing.json()["error"]["message"].startswith("AKV10000")
    wrong = session.get(url, headers={"Authorization": f"Bearer {arm_token}"}, timeout=10)
    assert wrong.status_code == 401
    assert "AKV10022" in wrong.json()["error"]["message"]
    bad_version = session.get(
        url.replace("7.5", "1999-01-01"), headers={"Authorization": f"Bearer {arm_token}"}, timeout=10
    )
    assert bad_version.status_code == 401  # authentication comes first


def test_managed_identity_credential_works_unchanged(emu: ApimEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
    credential = ManagedIdentityCredential(client_id=FUNC_UA["clientId"])
    with SecretClient(VAULT_URL, credential, **client_kwargs(emu)) as client:
        assert client.get_secret("partner-signing-key").value == "emulator-only-signing-key"


def test_unknown_vault_does_not_resolve(emu: ApimEmulator) -> None:
    with (
        SecretClient(
            "https://kv-nowhere.vault.azure.net", IdentityCredential(emu), **client_kwargs(emu, retry_total=0)
        ) as client,
        pytest.raises(ServiceRequestError),
    ):
        client.get_secret("anything")


def test_vault_region_outage_and_recovery(emu: ApimEmulator) -> None:
    with secret_client(emu, FUNC_UA["clientId"], retry_total=0) as client:
        assert client.get_secret("partner-signing-key").value
        emu.admin._call("POST", "/regions/westeurope/down", {"keyVault": True})
        with pytest.raises(ServiceRequestError):
            client.get_secret("partner-signing-key")
        emu.admin._call("POST", "/regions/westeurope/up")
        assert client.get_secret("partner-signing-key").value == "emulator-only-signing-key"
