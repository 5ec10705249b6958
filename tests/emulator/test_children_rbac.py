"""ARM RBAC on the configuration child resources: the action ARM derives from each path and method.

A snapshot reads with ``.../apis/read``, ``.../apis/operations/policies/read`` ..., reveals nothing with
``*/read`` (a secret needs ``namedValues/listValue/action``), and an item restore writes with
``.../write`` and ``.../delete``: each granted exactly and at the narrowest scope, and denied with ARM's
403 naming the action and the scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models as m
from emu_support import FUNC_SYSTEM, PROD, PROD_RG, SUB, service_path

from emulator.apim import ApimEmulator
from emulator.apim.auth import Permission, required_permission

NS = "Microsoft.ApiManagement/service"
OID = FUNC_SYSTEM["principalId"]
S = service_path(PROD)
SUB_SCOPE = f"/subscriptions/{SUB}"


@pytest.mark.parametrize(("method", "path", "action", "scope"), [
    ("GET", f"{S}/apis/echo-api/operations/o/policies/policy", f"{NS}/apis/operations/policies/read",
     f"{S}/apis/echo-api/operations/o/policies/policy"),
    ("PUT", f"{S}/apis/echo-api/operations/o/policies/policy", f"{NS}/apis/operations/policies/write",
     f"{S}/apis/echo-api/operations/o/policies/policy"),
    ("DELETE", f"{S}/apis/echo-api", f"{NS}/apis/delete", f"{S}/apis/echo-api"),
    ("PATCH", f"{S}/apis/echo-api;rev=2", f"{NS}/apis/write", f"{S}/apis/echo-api;rev=2"),
    ("HEAD", f"{S}/products/starter/apis/echo-api", f"{NS}/products/apis/read", f"{S}/products/starter/apis/echo-api"),
    ("GET", f"{S}/apiversionsets", f"{NS}/apiVersionSets/read", S),
    ("GET", f"{S}/policyFragments", f"{NS}/policyFragments/read", S),
    ("POST", f"{S}/namedValues/secret/listValue", f"{NS}/namedValues/listValue/action", f"{S}/namedValues/secret"),
    ("POST", f"{S}/namedvalues/secret/listvalue", f"{NS}/namedValues/listValue/action", f"{S}/namedValues/secret"),
    ("POST", f"{S}/subscriptions/s/listSecrets", f"{NS}/subscriptions/listSecrets/action", f"{S}/subscriptions/s"),
    ("GET", f"{S}/apis/echo-api/revisions", f"{NS}/apis/revisions/read", f"{S}/apis/echo-api"),
])
def test_child_actions_are_derived_from_path_and_method(method: str, path: str, action: str, scope: str) -> None:
    assert required_permission(method, path) == Permission(action, scope)


Answer = tuple[int, str]


def _sdk(call: Callable[[], object]) -> Answer:
    try:
        call()
    except HttpResponseError as e:
        assert e.status_code is not None
        return e.status_code, str(e.error.message if e.error else e.message)
    return 200, ""


@dataclass(frozen=True)
class Case:
    label: str
    action: str
    scope: str  # the narrowest scope that covers the request, and the one a 403 names
    call: Callable[[ApiManagementClient], Answer]


CASES = [
    Case("get API", f"{NS}/apis/read", f"{S}/apis/echo-api",
         lambda c: _sdk(lambda: c.api.get(PROD_RG, PROD, "echo-api"))),
    Case("list operations", f"{NS}/apis/operations/read", f"{S}/apis/echo-api",
         lambda c: _sdk(lambda: list(c.api_operation.list_by_api(PROD_RG, PROD, "echo-api")))),
    Case("write an operation policy", f"{NS}/apis/operations/policies/write",
         f"{S}/apis/echo-api/operations/echo/policies/policy",
         lambda c: _sdk(lambda: c.api_operation_policy.create_or_update(
             PROD_RG, PROD, "echo-api", "echo", "policy", m.PolicyContract(value="<policies />")))),
    Case("reveal a secret", f"{NS}/namedValues/listValue/action", f"{S}/namedValues/legacy-basic-auth",
         lambda c: _sdk(lambda: c.named_value.list_value(PROD_RG, PROD, "legacy-basic-auth"))),
    Case("delete a tag", f"{NS}/tags/delete", f"{S}/tags/t1",
         lambda c: _sdk(lambda: c.tag.delete(PROD_RG, PROD, "t1", if_match="*"))),
    Case("link an API to a product", f"{NS}/products/apis/write", f"{S}/products/partners/apis/echo-api",
         lambda c: _sdk(lambda: c.product_api.create_or_update(PROD_RG, PROD, "partners", "echo-api"))),
    Case("list groups", f"{NS}/groups/read", S, lambda c: _sdk(lambda: list(c.group.list_by_service(PROD_RG, PROD)))),
]


@pytest.fixture
def prepared(emu: ApimEmulator, client: ApiManagementClient) -> ApiManagementClient:
    """An operation to put a policy on and a tag to delete, made while everyone may."""
    emu.admin.set_arm_roles(None)
    client.api_operation.create_or_update(PROD_RG, PROD, "echo-api", "echo", m.OperationContract(
        display_name="Echo", method="GET", url_template="/echo"))
    client.tag.create_or_update(PROD_RG, PROD, "t1", m.TagCreateUpdateParameters(display_name="T1"))
    return client


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_granted_exactly_that_action(case: Case, emu: ApimEmulator, prepared: ApiManagementClient) -> None:
    emu.admin.set_arm_roles({OID: [{"actions": [case.action], "scope": case.scope}]})
    status, message = case.call(prepared)
    assert status == 200, message


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_denied_without_that_action(case: Case, emu: ApimEmulator, prepared: ApiManagementClient) -> None:
    everything_else = [c.action for c in CASES if c.action != case.action]
    emu.admin.set_arm_roles({OID: [{"actions": everything_else, "scope": SUB_SCOPE}]})
    before = emu.admin.service(PROD)["configuration"]
    status, message = case.call(prepared)
    assert status == 403
    assert f"does not have authorization to perform action '{case.action}' over scope '{case.scope}'" in message
    assert emu.admin.service(PROD)["configuration"] == before, "a refused request changes nothing"


def test_read_wildcards_read_everything_but_reveal_and_write_nothing(
    emu: ApimEmulator, prepared: ApiManagementClient
) -> None:
    # The snapshot reader's role: Microsoft.ApiManagement/service/*/read.
    emu.admin.set_arm_roles({OID: [{"actions": [f"{NS}/*/read"], "scope": S}]})
    by_label = {c.label: c for c in CASES}
    for label in ("get API", "list operations", "list groups"):
        assert by_label[label].call(prepared)[0] == 200, label
    for label in ("reveal a secret", "write an operation policy", "delete a tag", "link an API to a product"):
        assert by_label[label].call(prepared)[0] == 403, label


def test_a_write_wildcard_on_apis_covers_their_children(emu: ApimEmulator, prepared: ApiManagementClient) -> None:
    emu.admin.set_arm_roles({OID: [{"actions": [f"{NS}/apis/*"], "scope": S}]})
    by_label = {c.label: c for c in CASES}
    assert by_label["write an operation policy"].call(prepared)[0] == 200
    assert by_label["list operations"].call(prepared)[0] == 200
    assert by_label["link an API to a product"].call(prepared)[0] == 403  # products/apis is not under apis/
