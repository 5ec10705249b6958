"""The Key Vault stand-in through the official azure-keyvault-secrets client (and azure-keyvault-certificates)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.keyvault.secrets import SecretClient
from standins_support import FUNC_UA, VAULT_URL, IdentityCredential, client_kwargs

from emulator.apim import ApimEmulator


def secret_client(emu: ApimEmulator, client_id: str | None = None, **extra: object) -> SecretClient:
    return SecretClient(VAULT_URL, IdentityCredential(emu, client_id), **client_kwargs(emu, **extra))


def test_granted_identity_reads_the_secret_value(emu: ApimEmulator) -> None:
    credential = IdentityCredential(emu, FUNC_UA["clientId"])
    with SecretClient(VAULT_URL, credential, **client_kwargs(emu)) as client:
        secret = client.get_secret("partner-signing-key")
    assert secret.value == "emulator-only-signing-key"
    assert secret.id.startswith(f"{VAULT_URL}/secrets/partner-signing-key/")
    assert credential.scopes == ["https://vault.azure.net/.default"]  # from the 401 challenge


def test_identity_without_a_role_gets_forbidden_by_rbac(emu: ApimEmulator) -> None:
    with secret_client(emu) as client, pytest.raises(HttpResponseError) as caught:
        client.get_secret("partner-signing-key")
    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "Forbidden"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in str(caught.value)
