"""What ARM checks before APIM sees a request: tokens, RBAC, api-versions, path names, lookups."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from emu_support import (
    ACCOUNT,
    CONTAINER,
    FUNC_SYSTEM,
    FUNC_UA,
    PROD,
    PROD_RG,
    SUB,
    RawArm,
    StaticTokenCredential,
    error_of,
    identity_token,
    key_body,
    make_token,
    service_path,
    unique,
)

from emulator.apim import SUPPORTED_API_VERSIONS, ApimEmulator

READ = "Microsoft.ApiManagement/service/read"
POLL = "Microsoft.ApiManagement/service/operationresults/read"
BACKUP = "Microsoft.ApiManagement/service/backup/action"
RESTORE = "Microsoft.ApiManagement/service/restore/action"


def _sdk(emu: ApimEmulator, token: str) -> ApiManagementClient:
    return ApiManagementClient(
        StaticTokenCredential(token), SUB, base_url=emu.arm_url, connection_verify=str(emu.ca_bundle)
    )


# -- 401 ---------------------------------------------------------------------------------------
def test_missing_authorization_header(raw: RawArm) -> None:
    answer = raw.request("GET", service_path(PROD), token="")
    assert answer.status_code == 401
    assert answer.json()["error"] == {
        "code": "AuthenticationFailed",
        "message": "Authentication failed. The 'Authorization' header is missing.",
    }
    assert answer.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


@pytest.mark.parametrize(
    ("label", "token", "code"),
    [
        ("expired", make_token(lifetime=-120), "ExpiredAuthenticationToken"),
        ("storage audience", make_token(aud="https://storage.azure.com"), "InvalidAuthenticationTokenAudience"),
        ("other audience", make_token(aud="api://something-else"), "InvalidAuthenticationTokenAudience"),
        ("not a JWT", "definitely-not-a-jwt", "InvalidAuthenticationToken"),
    ],
)
def test_bad_tokens_are_refused(emu: ApimEmulator, raw: RawArm, label: str, token: str, code: str) -> None:
    answer = raw.request("GET", service_path(PROD), token=token)
    assert answer.status_code == 401, label
    assert answer.json()["error"]["code"] == code
    # Through the SDK: ClientAuthenticationError carrying ARM's code.
    with _sdk(emu, token) as client, pytest.raises(ClientAuthenticationError) as caught:
        client.api_management_service.get(PROD_RG, PROD)
    assert error_of(caught.value).code == code


def test_expired_token_message_names_the_times(raw: RawArm) -> None:
    message = raw.request("GET", service_path(PROD), token=make_token(lifetime=-120)).json()["error"]["message"]
    assert message.startswith("The access token expiry UTC time '") and "is earlier than current UTC time" in message


@pytest.mark.parametrize("aud", ["https://management.azure.com", "https://management.azure.com/"])
def test_arm_audience_with_or_without_slash(raw: RawArm, aud: str) -> None:
    assert raw.request("GET", service_path(PROD), token=make_token(aud=aud)).status_code == 200


# -- 403 ---------------------------------------------------------------------------------------
def test_role_table_limits_actions(emu: ApimEmulator, raw: RawArm, client: ApiManagementClient) -> None:
    oid = FUNC_SYSTEM["principalId"]
    emu.admin.set_arm_roles({oid: [{"actions": [READ], "scope": f"/subscriptions/{SUB}"}]})
    assert raw.request("GET", service_path(PROD)).status_code == 200
    denied = raw.start("backup", PROD, key_body(unique()))
    assert denied.status_code == 403
    scope = service_path(PROD)
    assert denied.json()["error"] == {
        "code": "AuthorizationFailed",
        "message": f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
        f"'{BACKUP}' over scope '{scope}' or the scope is invalid. "
        "If access was recently granted, please refresh your credentials.",
    }
    restore = raw.start("restore", PROD, key_body(unique()))
    assert restore.status_code == 403 and f"'{RESTORE}'" in restore.json()["error"]["message"]
    with pytest.raises(HttpResponseError) as caught:
        client.api_management_service.begin_backup(
            PROD_RG, PROD, Params(storage_account=ACCOUNT, container_name=CONTAINER, backup_name="b", access_key="k")
        )
    assert caught.value.status_code == 403 and error_of(caught.value).code == "AuthorizationFailed"
    assert not emu.admin.operations(service=PROD)


def test_polling_needs_operationresults_read(emu: ApimEmulator, raw: RawArm) -> None:
    # The operation-results resource is its own type: service/read does not cover it.
    oid = FUNC_SYSTEM["principalId"]
    emu.admin.set_arm_roles({oid: [{"actions": [BACKUP, READ], "scope": service_path(PROD)}]})
    started = raw.start("backup", PROD, key_body(unique()))
    assert started.status_code == 202
    poll = raw.poll(started.headers["Location"])
    assert poll.status_code == 403 and f"'{POLL}'" in poll.json()["error"]["message"]
    emu.admin.set_arm_roles({oid: [{"actions": ["Microsoft.ApiManagement/service/*"], "scope": service_path(PROD)}]})
    emu.admin.advance_clock(60)
    assert raw.poll(started.headers["Location"]).status_code == 200
    # Scope is a prefix of resource ids: another resource group is out of scope.
    assert raw.request("GET", service_path("apim-contoso-dr")).status_code == 403


def test_seeded_role_table_and_unknown_principals(emu: ApimEmulator, raw: RawArm) -> None:
    # The seed grants the Function App's identities; a stranger gets 403, even for reads.
    ua_token = identity_token(emu, client_id=FUNC_UA["clientId"])
    assert raw.request("GET", service_path(PROD), token=ua_token).status_code == 200
    stranger = make_token(oid=str(uuid.uuid4()))
    assert raw.request("GET", service_path(PROD), token=stranger).status_code == 403
    assert (
        raw.request(
            "GET", f"/subscriptions/{SUB}/providers/Microsoft.ApiManagement/service", token=stranger
        ).status_code
        == 403
    )
    # Without a role table every authenticated caller is allowed.
    emu.admin.set_arm_roles(None)
    assert raw.request("GET", service_path(PROD), token=stranger).status_code == 200
    assert raw.start("backup", PROD, key_body(unique()), token=stranger).status_code == 202
    logged = emu.admin.requests(method="POST", path_contains="/backup")
    assert [e["principal"] for e in logged] == [jwt.decode(stranger, options={"verify_signature": False})["oid"]]


# -- api-versions, names, lookups -----------------------------------------------------------------
@pytest.mark.parametrize("version", SUPPORTED_API_VERSIONS)
def test_supported_api_versions(raw: RawArm, version: str) -> None:
    assert raw.request("GET", service_path(PROD), api_version=version).status_code == 200
    started = raw.start("backup", PROD, key_body(unique()), api_version=version)
    assert started.status_code == 202
    assert started.headers["Location"].endswith(f"?api-version={version}")
    raw.emu.admin.advance_clock(60)


@pytest.mark.parametrize("version", ["2019-01-01", "2024-06-01-preview", "banana"])
def test_unsupported_api_version(raw: RawArm, version: str) -> None:
    for answer in (
        raw.request("GET", service_path(PROD), api_version=version),
        raw.start("backup", PROD, key_body(unique()), api_version=version),
    ):
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "NoRegisteredProviderFound"
        assert answer.json()["error"]["message"].startswith(
            f"No registered resource provider found for location 'westeurope' and API version '{version}' "
            f"for type 'service'. The supported api-versions are '{', '.join(SUPPORTED_API_VERSIONS)}'."
        )


def test_sdk_with_an_unsupported_api_version(emu: ApimEmulator, arm_token: str) -> None:
    with (
        ApiManagementClient(
            StaticTokenCredential(arm_token),
            SUB,
            base_url=emu.arm_url,
            connection_verify=str(emu.ca_bundle),
            api_version="2019-01-01",
        ) as client,
        pytest.raises(HttpResponseError) as caught,
    ):
        client.api_management_service.get(PROD_RG, PROD)
    assert error_of(caught.value).code == "NoRegisteredProviderFound"


@pytest.mark.parametrize(
    ("rg", "name", "code"),
    [
        (PROD_RG, "1bad_name!", "InvalidResourceName"),
        (PROD_RG, "ends-with-hyphen-", "InvalidResourceName"),
        (PROD_RG, "x" * 51, "InvalidResourceName"),
        ("r" * 91, PROD, "InvalidResourceGroup"),
        ("rg*star", PROD, "InvalidResourceGroup"),
        ("rg-ends-with-dot.", PROD, "InvalidResourceGroup"),
    ],
)
def test_bad_path_names(client: ApiManagementClient, raw: RawArm, rg: str, name: str, code: str) -> None:
    # The SDK does not validate client-side (apim-arm.md §1.1), so the server must.
    with pytest.raises(HttpResponseError) as caught:
        client.api_management_service.get(rg, name)
    assert caught.value.status_code == 400 and error_of(caught.value).code == code
    path = (
        f"/subscriptions/{SUB}/resourceGroups/{quote(rg, safe='')}"
        f"/providers/Microsoft.ApiManagement/service/{quote(name, safe='')}/backup"
    )
    refused = raw.request("POST", path, body=key_body(unique()))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == code


def test_not_found_answers(client: ApiManagementClient, raw: RawArm) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        client.api_management_service.get(PROD_RG, "apim-does-not-exist")
    assert error_of(caught.value).code == "ResourceNotFound"
    assert error_of(caught.value).message == (
        "The Resource 'Microsoft.ApiManagement/service/apim-does-not-exist' under resource group "
        f"'{PROD_RG}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    )
    with pytest.raises(ResourceNotFoundError) as caught:
        client.api_management_service.get("rg-nowhere", PROD)
    assert error_of(caught.value).code == "ResourceGroupNotFound"
    assert error_of(caught.value).message == "Resource group 'rg-nowhere' could not be found."
    # The service exists, but in another resource group.
    assert raw.request("GET", service_path(PROD, rg="rg-apim-dr")).status_code == 404
    # Unknown operation ids on a known service.
    assert (
        raw.request(
            "GET", f"{service_path(PROD)}/operationresults/d2VzdGV1cm9wZTpub3BlX0FjdF8wMDAwMDAwMA=="
        ).status_code
        == 404
    )
    assert raw.request("DELETE", service_path(PROD)).status_code == 405
