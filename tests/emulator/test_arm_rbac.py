"""ARM authorisation by the action derived from each request's path and method.

One request per action the app (and issue 11's restore drills) uses, through the official client
where it has a method and raw HTTPS otherwise; each both granted (exactly that action, at the
narrowest scope that covers the request) and denied (every other action, subscription-wide), where
the 403 must name the exact action and scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from emu_support import (
    ACCOUNT,
    ACCOUNT_KEY,
    CONTAINER,
    DEV,
    DR,
    DR_RG,
    FUNC_SYSTEM,
    PROD,
    PROD_RG,
    SUB,
    RawArm,
    key_body,
    service_path,
    unique,
)

from emulator.apim import ApimEmulator
from emulator.apim.auth import Permission, action_matches, required_permission

NS = "Microsoft.ApiManagement"
READ = f"{NS}/service/read"
POLL = f"{NS}/service/operationresults/read"
BACKUP = f"{NS}/service/backup/action"
RESTORE = f"{NS}/service/restore/action"
APIS = f"{NS}/service/apis/read"
PRODUCTS = f"{NS}/service/products/read"
NAMED_VALUES = f"{NS}/service/namedValues/read"
EVERY_ACTION = (READ, POLL, BACKUP, RESTORE, APIS, PRODUCTS, NAMED_VALUES)
OID = FUNC_SYSTEM["principalId"]
SUB_SCOPE = f"/subscriptions/{SUB}"
PROD_SCOPE = service_path(PROD)
S = f"/subscriptions/{SUB}/resourceGroups/{PROD_RG}/providers/{NS}/service"


# -- the derivation, as a pure function ----------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "action", "scope"),
    [
        ("GET", f"{S}/{PROD}", READ, PROD_SCOPE),
        ("GET", S, READ, f"{SUB_SCOPE}/resourceGroups/{PROD_RG}"),
        ("GET", f"{SUB_SCOPE}/providers/{NS}/service", READ, SUB_SCOPE),
        ("POST", f"{S}/{PROD}/backup", BACKUP, PROD_SCOPE),
        ("POST", f"{S}/{PROD}/restore", RESTORE, PROD_SCOPE),
        ("GET", f"{S}/{PROD}/operationresults/abc=", POLL, f"{PROD_SCOPE}/operationresults/abc="),
        ("GET", f"{S}/{PROD}/apis", APIS, PROD_SCOPE),
        ("GET", f"{S}/{PROD}/products", PRODUCTS, PROD_SCOPE),
        ("GET", f"{S}/{PROD}/namedValues", NAMED_VALUES, PROD_SCOPE),
        ("PUT", f"{S}/{PROD}", f"{NS}/service/write", PROD_SCOPE),
        ("PATCH", f"{S}/{PROD}", f"{NS}/service/write", PROD_SCOPE),
        ("DELETE", f"{S}/{PROD}", f"{NS}/service/delete", PROD_SCOPE),
        ("GET", f"{S}/{PROD}/apis/echo-api", APIS, f"{PROD_SCOPE}/apis/echo-api"),
        ("DELETE", f"{S}/{PROD}/apis/echo-api", f"{NS}/service/apis/delete", f"{PROD_SCOPE}/apis/echo-api"),
        ("GET", f"{S}/{PROD}/apis/echo-api/operations", f"{NS}/service/apis/operations/read",
         f"{PROD_SCOPE}/apis/echo-api"),
        # ARM's casing whatever the request's: types and namespace as registered, names as sent.
        ("GET", f"/subscriptions/{SUB}/resourcegroups/{PROD_RG}/providers/microsoft.apimanagement/service/{PROD}"
                "/namedvalues", NAMED_VALUES, PROD_SCOPE),
    ],
)
def test_action_is_derived_from_path_and_method(method: str, path: str, action: str, scope: str) -> None:
    assert required_permission(method, path) == Permission(action, scope)
    assert required_permission(method, path + "?api-version=2024-05-01") == Permission(action, scope)


def test_no_action_for_what_arm_would_not_route() -> None:
    with pytest.raises(ValueError):
        required_permission("GET", f"/subscriptions/{SUB}/resourceGroups/{PROD_RG}")
    with pytest.raises(ValueError):
        required_permission("PUT", S)  # a collection cannot be written


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        (READ, READ, True),
        (READ.upper(), READ, True),  # case-insensitive
        (READ, POLL, False),  # service/read is not the operation-results type
        (f"{NS}/service/*", POLL, True),  # '*' crosses '/'
        (f"{NS}/service/*", BACKUP, True),
        (f"{NS}/*", APIS, True),
        ("*/read", POLL, True),
        ("*/read", BACKUP, False),
        ("*", RESTORE, True),
        (f"{NS}/service/*/read", READ, False),  # needs a segment between service/ and /read
        (f"{NS}/service/*/read", NAMED_VALUES, True),
        (f"{NS}/service/rea?", READ, False),  # '?' is literal in ARM (a glob would match)
        (f"{NS}/service/[r]ead", READ, False),  # so is '['
        (f"{NS}/service", READ, False),  # no implicit prefix match
    ],
)
def test_wildcards_match_as_arm_does(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


# -- one request per action, granted and denied --------------------------------------------------
Answer = tuple[int, str]  # HTTP status, error message ("" on success)


@dataclass(frozen=True)
class Case:
    label: str
    action: str
    grant_scope: str  # the narrowest role scope that covers the request
    call: Callable[[ApiManagementClient, RawArm, str], Answer]
    scope: str | None = None  # the scope a 403 names; None: the request's own path (a Location)


def _sdk(call: Callable[[], object]) -> Answer:
    try:
        call()
    except HttpResponseError as e:
        assert e.status_code is not None
        return e.status_code, str(e.error.message if e.error else e.message)
    return 200, ""


def _params(name: str) -> Params:
    return Params(storage_account=ACCOUNT, container_name=CONTAINER, backup_name=name, access_type="AccessKey",
                  access_key=ACCOUNT_KEY)


def _poll(raw: RawArm, location: str) -> Answer:
    answer = raw.poll(location)
    return answer.status_code, answer.json()["error"]["message"] if answer.status_code >= 400 else ""


RG_SCOPE = f"{SUB_SCOPE}/resourceGroups/{PROD_RG}"
CASES = [
    Case("service read", READ, PROD_SCOPE, lambda c, r, loc: _sdk(lambda: c.api_management_service.get(PROD_RG, PROD)),
         PROD_SCOPE),
    Case("list by resource group", READ, RG_SCOPE,
         lambda c, r, loc: _sdk(lambda: list(c.api_management_service.list_by_resource_group(PROD_RG))), RG_SCOPE),
    Case("list by subscription", READ, SUB_SCOPE,
         lambda c, r, loc: _sdk(lambda: list(c.api_management_service.list())), SUB_SCOPE),
    Case("backup", BACKUP, PROD_SCOPE, lambda c, r, loc: _sdk(
        lambda: c.api_management_service.begin_backup(PROD_RG, PROD, _params(unique()), polling=False)), PROD_SCOPE),
    # Accepted (202; it fails later, on poll) is enough: authorisation happens on the POST.
    Case("restore", RESTORE, service_path(DR), lambda c, r, loc: _sdk(
        lambda: c.api_management_service.begin_restore(DR_RG, DR, _params(unique()), polling=False)),
        service_path(DR)),
    # No public client method polls a Location: raw HTTPS, as dr_core's poll_once sends it.
    Case("poll operation result", POLL, service_path(DEV), lambda c, r, loc: _poll(r, loc)),
    Case("list APIs", APIS, PROD_SCOPE, lambda c, r, loc: _sdk(lambda: list(c.api.list_by_service(PROD_RG, PROD))),
         PROD_SCOPE),
    Case("list products", PRODUCTS, PROD_SCOPE,
         lambda c, r, loc: _sdk(lambda: list(c.product.list_by_service(PROD_RG, PROD))), PROD_SCOPE),
    Case("list named values", NAMED_VALUES, PROD_SCOPE,
         lambda c, r, loc: _sdk(lambda: list(c.named_value.list_by_service(PROD_RG, PROD))), PROD_SCOPE),
]


def _location(emu: ApimEmulator, raw: RawArm) -> str:
    """A real operation's Location (on another service than the cases' POSTs), started while everyone may."""
    emu.admin.set_arm_roles(None)
    started = raw.start("backup", DEV, key_body(unique()))
    assert started.status_code == 202, started.text
    return str(started.headers["Location"])


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_granted_exactly_that_action(
    case: Case, emu: ApimEmulator, client: ApiManagementClient, raw: RawArm
) -> None:
    location = _location(emu, raw)
    emu.admin.set_arm_roles({OID: [{"actions": [case.action], "scope": case.grant_scope}]})
    status, message = case.call(client, raw, location)
    assert status in (200, 202), message


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_denied_without_that_action(
    case: Case, emu: ApimEmulator, client: ApiManagementClient, raw: RawArm
) -> None:
    location = _location(emu, raw)
    emu.admin.set_arm_roles({OID: [{"actions": [a for a in EVERY_ACTION if a != case.action], "scope": SUB_SCOPE}]})
    operations = len(emu.admin.operations())
    status, message = case.call(client, raw, location)
    scope = case.scope or location.split("?")[0].removeprefix(emu.arm_url)
    assert status == 403
    assert f"does not have authorization to perform action '{case.action}' over scope '{scope}'" in message
    assert len(emu.admin.operations()) == operations, "a refused request starts nothing"


def test_a_grant_below_the_list_scope_does_not_cover_the_list(emu: ApimEmulator, client: ApiManagementClient) -> None:
    # service/read on one service is not service/read on its resource group.
    emu.admin.set_arm_roles({OID: [{"actions": [READ], "scope": PROD_SCOPE}]})
    assert client.api_management_service.get(PROD_RG, PROD).name == PROD
    assert _sdk(lambda: list(client.api_management_service.list_by_resource_group(PROD_RG)))[0] == 403


WILDCARD_GRANTS = [
    (["*/read"], ["service read", "poll operation result", "list APIs", "list named values"], ["backup"]),
    ([f"{NS}/service/*"], ["poll operation result", "backup", "list products"], []),
    ([f"{NS}/service/read", f"{NS}/service/backup/action"], ["service read", "backup"],
     ["poll operation result", "list APIs"]),
    (["*"], ["restore", "poll operation result", "list named values"], []),
]


@pytest.mark.parametrize("grant", WILDCARD_GRANTS, ids=[", ".join(g[0]) for g in WILDCARD_GRANTS])
def test_wildcard_grants_through_the_front_door(
    emu: ApimEmulator, client: ApiManagementClient, raw: RawArm, grant: tuple[list[str], list[str], list[str]]
) -> None:
    actions, allowed, refused = grant
    by_label = {c.label: c for c in CASES}
    location = _location(emu, raw)
    emu.admin.set_arm_roles({OID: [{"actions": actions, "scope": SUB_SCOPE}]})
    for label in allowed:
        assert by_label[label].call(client, raw, location)[0] in (200, 202), label
    for label in refused:
        assert by_label[label].call(client, raw, location)[0] == 403, label
