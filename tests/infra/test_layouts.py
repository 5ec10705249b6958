"""Both deployment layouts: instances in the deployment's subscription, and instances (and discovery)
in other subscriptions. Each is evaluated (tests/infra/layouts.py) and checked against ARM's rules for
custom role definitions; each rule is shown to catch a mutated template."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.infra.bicep_model import CUSTOM_ROLES, MAIN, Infra
from tests.infra.layouts import (
    DEPLOYMENT_SUB,
    DISCOVERY_SUB,
    LAYOUTS,
    OTHER_SUB_A,
    OTHER_SUB_B,
    Layout,
    Scope,
    Unevaluable,
    deploy,
    layout_problems,
)

SAME, CROSS, DISCOVERY_ONLY, EMPTY = LAYOUTS


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.from_disk()


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_every_layout_keeps_arms_rules(infra: Infra, layout: Layout) -> None:
    assert layout_problems(infra, layout) == []


def test_instances_in_other_subscriptions_are_granted_there_by_a_role_defined_here(infra: Infra) -> None:
    deployed = deploy(infra, CROSS)
    home = f"/subscriptions/{DEPLOYMENT_SUB}/resourcegroups/rg-prod"
    operator = deployed.roles["operatorRole"]
    assert operator.created_at == Scope(DEPLOYMENT_SUB)
    assert [s.lower() for s in operator.assignable_scopes] == [
        home,
        f"/subscriptions/{OTHER_SUB_A}/resourcegroups/rg-api",
        f"/subscriptions/{OTHER_SUB_B}/resourcegroups/rg-api-dr",
        f"/subscriptions/{OTHER_SUB_A}/resourcegroups/rg-drill",
        f"/subscriptions/{DISCOVERY_SUB}",
        f"/subscriptions/{OTHER_SUB_B}",
    ]
    assert sorted(scope.path for _, scope in deployed.operator_grants) == sorted([
        f"/subscriptions/{OTHER_SUB_A}/resourcegroups/rg-api",
        f"/subscriptions/{OTHER_SUB_B}/resourcegroups/rg-api-dr",
        f"/subscriptions/{OTHER_SUB_A}/resourcegroups/rg-drill",
        f"/subscriptions/{DISCOVERY_SUB}",
        f"/subscriptions/{OTHER_SUB_B}",
    ])
    # Nothing of the operator role is granted in the deployment's subscription.
    assert not any(scope.subscription == DEPLOYMENT_SUB for _, scope in deployed.operator_grants)


def test_the_same_subscription_layout_grants_on_each_instance_group(infra: Infra) -> None:
    deployed = deploy(infra, SAME)
    assert [scope.resource_group for _, scope in deployed.operator_grants] == ["rg-api", "rg-api-dr"]
    assert deployed.roles["operatorRole"].assignable_scopes[0].lower() == deployed.resource_group.path


def test_nothing_to_protect_creates_no_operator_role(infra: Infra) -> None:
    deployed = deploy(infra, EMPTY)
    assert "operatorRole" not in deployed.roles
    assert deployed.operator_grants == []
    assert set(deployed.roles) == {"backupDataRole", "backupCatalogRole", "backupRetentionRole"}


@dataclass(frozen=True)
class Mutation:
    """A real mistake: ``old`` replaced by ``new`` in ``path`` must make ``layout`` report ``expected``."""

    what: str
    path: str
    old: str
    new: str
    layout: Layout
    expected: str


MUTATIONS = [Mutation(*m) for m in [
    # The role assignable only where it is granted: fine in one subscription, but with every instance
    # elsewhere its first assignable scope lies outside the subscription it is created in.
    ("no home scope", MAIN,
     "var operatorAssignableScopes = empty(operatorGrantScopes) ? [] : union([\n  homeResourceGroupScope\n], "
     "operatorGrantScopes)",
     "var operatorAssignableScopes = operatorGrantScopes", CROSS, "ARM creates a role at its first assignable"),
    ("home scope not first", MAIN,
     "union([\n  homeResourceGroupScope\n], operatorGrantScopes)", "union(operatorGrantScopes, [\n  "
     "homeResourceGroupScope\n])", CROSS, "ARM creates a role at its first assignable"),
    ("discovery not assignable", MAIN, "var operatorGrantScopes = union(targetResourceGroupScopes, discoveryScopes)",
     "var operatorGrantScopes = targetResourceGroupScopes", CROSS, "outside its assignable scopes"),
    ("whole subscriptions assignable", MAIN,
     "'/subscriptions/${toLower(split(t.resourceId, '/')[2])}/resourceGroups/${toLower(split(t.resourceId, '/')[4])}'",
     "'/subscriptions/${toLower(split(t.resourceId, '/')[2])}'", SAME, "where nothing needs it"),
    ("granted in the app's group instead of the instance's", MAIN,
     "  scope: resourceGroup(split(t.resourceId, '/')[2], split(t.resourceId, '/')[4])\n  params: {\n    apimName:",
     "  scope: resourceGroup(rgName)\n  params: {\n    apimName:", CROSS, "where nothing needs it"),
    ("operator role created with nothing to grant", CUSTOM_ROLES,
     "var createOperatorRole = !empty(operatorAssignableScopes)", "var createOperatorRole = true", EMPTY,
     "has no assignable scope"),
    ("backup roles assignable beyond their group", CUSTOM_ROLES,
     "    assignableScopes: [\n      backupResourceGroupId\n    ]\n  }\n}\n\n// Same GUID",
     "    assignableScopes: [\n      backupResourceGroupId\n      subscription().id\n    ]\n  }\n}\n\n// Same GUID",
     SAME, "backupDataRole must be assignable at the deployment's resource group only"),
]]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.what for m in MUTATIONS])
def test_each_rule_catches_its_mistake(infra: Infra, mutation: Mutation) -> None:
    problems = layout_problems(infra.mutated(mutation.path, mutation.old, mutation.new), mutation.layout)
    assert any(mutation.expected in p for p in problems), (
        f"{mutation.what}: not caught in layout {mutation.layout.name!r}: {problems}")


def test_the_missing_home_scope_fails_only_across_subscriptions(infra: Infra) -> None:
    """The defect this guards against is invisible in a one-subscription test deployment."""
    mutated = infra.mutated(MAIN, "union([\n  homeResourceGroupScope\n], operatorGrantScopes)",
                            "operatorGrantScopes")
    assert layout_problems(mutated, SAME) == []
    assert layout_problems(mutated, CROSS) != []


def test_an_expression_the_evaluator_does_not_know_fails_loudly(infra: Infra) -> None:
    mutated = infra.mutated(MAIN, "var discoveryScopes = [for sub in discoverySubscriptionList: "
                                  "'/subscriptions/${toLower(sub)}']",
                            "var discoveryScopes = [for sub in discoverySubscriptionList: "
                            "'/subscriptions/${toUpper(sub)}']")
    with pytest.raises(Unevaluable, match="to_upper"):
        deploy(mutated, CROSS)
