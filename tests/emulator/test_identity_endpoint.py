"""The App-Service-style managed-identity endpoint, used through azure-identity unchanged."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.mgmt.apimanagement import ApiManagementClient
from azure.storage.blob import BlobServiceClient
from emu_support import ACCOUNT, FUNC_SYSTEM, FUNC_UA, PROD, PROD_RG, SUB, TENANT, StaticTokenCredential, make_token

from emulator.apim import ApimEmulator
from emulator.azurite import Azurite

ARM_SCOPE = "https://management.azure.com/.default"
STORAGE_SCOPE = "https://storage.azure.com/.default"


@pytest.fixture
def mi_env(emu: ApimEmulator, monkeypatch: pytest.MonkeyPatch) -> ApimEmulator:
    for name, value in emu.env().items():
        if name != "REQUESTS_CA_BUNDLE":  # keep the process-wide bundle; clients get connection_verify
            monkeypatch.setenv(name, value)
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    return emu


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_system_assigned_identity(mi_env: ApimEmulator) -> None:
    token = ManagedIdentityCredential().get_token(ARM_SCOPE)
    claims = _claims(token.token)
    assert claims["oid"] == FUNC_SYSTEM["principalId"]
    assert claims["appid"] == FUNC_SYSTEM["clientId"]
    assert claims["aud"] == "https://management.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/" and claims["tid"] == TENANT
    assert int(claims["nbf"]) <= time.time() < int(claims["exp"]) == token.expires_on  # type: ignore[call-overload]
    assert jwt.get_unverified_header(token.token)["alg"] == "HS256"
    entry = mi_env.admin.requests(server="identity")[-1]
    assert entry["status"] == 200 and entry["principal"] == FUNC_SYSTEM["principalId"]


def test_user_assigned_identity_by_client_id(mi_env: ApimEmulator) -> None:
    token = ManagedIdentityCredential(client_id=FUNC_UA["clientId"]).get_token(ARM_SCOPE)
    assert _claims(token.token)["oid"] == FUNC_UA["principalId"]
    assert _claims(token.token)["xms_mirid"] == FUNC_UA["resourceId"]
    # msal sends these as mi_res_id= and object_id=.
    for config in ({"resource_id": FUNC_UA["resourceId"]}, {"object_id": FUNC_UA["principalId"]}):
        other = ManagedIdentityCredential(identity_config=config).get_token(ARM_SCOPE)
        assert _claims(other.token)["oid"] == FUNC_UA["principalId"]
    assert "mi_res_id=" in mi_env.admin.requests(server="identity")[-2]["query"]


def test_unknown_client_id_is_refused(mi_env: ApimEmulator) -> None:
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(client_id=str(uuid.uuid4())).get_token(ARM_SCOPE)
    assert mi_env.admin.requests(server="identity")[-1]["status"] == 400


def test_identity_header_is_required(emu: ApimEmulator) -> None:
    params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    assert requests.get(emu.identity_endpoint, params=params, timeout=10).status_code == 401
    wrong = requests.get(emu.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": "nope"}, timeout=10)
    assert wrong.status_code == 401
    right = requests.get(
        emu.identity_endpoint, params=params, headers={"X-IDENTITY-HEADER": emu.identity_header}, timeout=10
    )
    body = right.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert (
        body["token_type"] == "Bearer" and body["expires_on"].isdigit() and body["client_id"] == FUNC_SYSTEM["clientId"]
    )
    assert (
        requests.get(
            emu.identity_endpoint,
            params={"api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": emu.identity_header},
            timeout=10,
        ).status_code
        == 400
    )


def test_default_credential_drives_the_official_client(mi_env: ApimEmulator) -> None:
    credential = DefaultAzureCredential(
        exclude_cli_credential=True, exclude_powershell_credential=True, exclude_developer_cli_credential=True
    )
    with ApiManagementClient(
        credential, SUB, base_url=mi_env.arm_url, connection_verify=str(mi_env.ca_bundle)
    ) as client:
        assert client.api_management_service.get(PROD_RG, PROD).name == PROD


def test_identity_tokens_are_accepted_by_azurite_over_https(mi_env: ApimEmulator, emu_azurite: Azurite) -> None:
    container = f"mi-{uuid.uuid4().hex[:12]}"
    for credential in (ManagedIdentityCredential(), ManagedIdentityCredential(client_id=FUNC_UA["clientId"])):
        assert _claims(credential.get_token(STORAGE_SCOPE).token)["aud"] == "https://storage.azure.com"
        service = BlobServiceClient(
            emu_azurite.endpoint("blob", ACCOUNT), credential=credential, connection_verify=str(mi_env.ca_bundle)
        )
        service.create_container(container) if not service.get_container_client(container).exists() else None
        service.get_blob_client(container, "hello.txt").upload_blob(b"hi", overwrite=True)
        assert service.get_blob_client(container, "hello.txt").download_blob().readall() == b"hi"
    # Control: Azurite does check the audience, so the acceptance above means something.
    wrong = BlobServiceClient(
        emu_azurite.endpoint("blob", ACCOUNT),
        credential=StaticTokenCredential(make_token(aud="https://management.azure.com")),
        connection_verify=str(mi_env.ca_bundle),
    )
    with pytest.raises(ClientAuthenticationError):
        wrong.get_container_client(container).exists()
