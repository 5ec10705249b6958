"""Configuration snapshots, the pure parts: item IDs, the document's bytes and hash, diff, and the restore plan."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest

from dr_core.snapshots.diff import ChangeKind, diff_documents
from dr_core.snapshots.document import (
    FORMAT,
    MAX_ITEMS,
    NotCaptured,
    SnapshotDocument,
    SnapshotDocumentError,
    SnapshotItem,
    canonical_json,
)
from dr_core.snapshots.kinds import KINDS, Tier, kind_named, parse_item_id
from dr_core.snapshots.plan import LiveItem, StepAction, plan_restore, references_of

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
PROD = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/prod"


def item(item_id: str, **properties: object) -> SnapshotItem:
    return SnapshotItem(parse_item_id(item_id), dict(properties))  # type: ignore[arg-type]


def doc(*items: SnapshotItem, not_captured: tuple[NotCaptured, ...] = (), sku: str = "StandardV2") -> SnapshotDocument:
    return SnapshotDocument.build(instance=PROD, sku=sku, taken_at=T0, api_version="2024-05-01", items=items,
                                  not_captured=not_captured)


def live(document: SnapshotDocument, etag: str = "e1") -> dict[str, LiveItem]:
    return {key: LiveItem(value, etag) for key, value in document.by_id().items()}


# -- item IDs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "kind", "names", "arm_path"), [
    ("apis/echo-api", "apis", ("echo-api",), "apis/echo-api"),
    ("apis/echo-api;rev=2", "apis", ("echo-api;rev=2",), "apis/echo-api;rev=2"),
    ("apis/echo-api/operations/get", "api-operations", ("echo-api", "get"), "apis/echo-api/operations/get"),
    ("apis/echo-api/policy", "api-policies", ("echo-api",), "apis/echo-api/policies/policy"),
    ("apis/a/operations/o/policy", "api-operation-policies", ("a", "o"), "apis/a/operations/o/policies/policy"),
    ("apis/a/operations/o/tags/t", "api-operation-tags", ("a", "o", "t"), "apis/a/operations/o/tags/t"),
    ("products/starter/apis/echo-api", "product-apis", ("starter", "echo-api"), "products/starter/apis/echo-api"),
    ("named-values/backend-url", "named-values", ("backend-url",), "namedValues/backend-url"),
    ("api-version-sets/v", "api-version-sets", ("v",), "apiVersionSets/v"),
    ("policy-fragments/f", "policy-fragments", ("f",), "policyFragments/f"),
    ("policy", "policy", (), "policies/policy"),
    ("/apis/policy/", "apis", ("policy",), "apis/policy"),
])
def test_item_ids_parse_to_their_kind_and_arm_path(text: str, kind: str, names: tuple[str, ...], arm_path: str) -> None:
    parsed = parse_item_id(text)
    assert (parsed.kind.key, parsed.names, parsed.arm_path) == (kind, names, arm_path)
    assert parse_item_id(str(parsed)) == parsed


@pytest.mark.parametrize(("text", "says"), [
    ("", "non-empty"),
    (None, "non-empty"),
    (42, "non-empty"),
    ("users/bob", "not an item ID"),
    ("apis", "not an item ID"),
    ("apis/a/b", "not an item ID"),
    ("apis/a*b", "not a valid APIM name"),
    ("apis/" + "x" * 257, "not a valid APIM name"),
    ("apis/a\x00b", "not a valid APIM name"),
    ("apis/<script>", "not a valid APIM name"),
    ("x" * 5000, "at most 1024"),
])
def test_bad_item_ids_are_refused_by_name(text: object, says: str) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        parse_item_id(text)
    assert len(str(raised.value)) < 400  # hostile input is never echoed in full


def test_kinds_order_puts_what_is_referred_to_first_and_policies_last() -> None:
    order = [k.key for k in KINDS]
    assert order.index("named-values") < order.index("backends") < order.index("apis")
    assert order.index("api-version-sets") < order.index("apis") < order.index("api-operations")
    assert order.index("api-schemas") < order.index("api-operations")
    assert order.index("loggers") < min(order.index("diagnostics"), order.index("api-diagnostics"))
    assert order.index("apis") < order.index("products") < order.index("product-apis")
    assert order[-1] == "policy" and all(order.index(p) > order.index("product-groups")
                                         for p in ("api-policies", "api-operation-policies", "product-policies"))
    for kind in KINDS:  # every parent comes before its children
        if kind.parent is not None:
            assert kind_named(kind.parent).order < kind.order


def test_groups_are_missing_in_consumption_only() -> None:
    groups = kind_named("groups")
    assert not groups.supported_in(Tier.CONSUMPTION)
    assert all(groups.supported_in(t) for t in Tier if t is not Tier.CONSUMPTION)


# -- the document ------------------------------------------------------------------------------
def test_the_same_configuration_gives_the_same_bytes_and_hash_whatever_the_order_or_time() -> None:
    a = doc(item("apis/b", path="b"), item("named-values/n", value="1"), item("apis/a", path="a"))
    b = SnapshotDocument.build(instance=PROD + "-other", sku="StandardV2", taken_at=datetime(2027, 1, 1, tzinfo=UTC),
                               api_version="2024-05-01",
                               items=[item("apis/a", path="a"), item("apis/b", path="b"),
                                      item("named-values/n", value="1")])
    assert a.content_hash == b.content_hash
    assert [str(i.item_id) for i in a.items] == ["named-values/n", "apis/a", "apis/b"]
    assert a.to_bytes() == doc(item("named-values/n", value="1"), item("apis/a", path="a"),
                               item("apis/b", path="b")).to_bytes()
    changed = doc(item("apis/b", path="b2"), item("named-values/n", value="1"), item("apis/a", path="a"))
    assert changed.content_hash != a.content_hash


def test_a_document_round_trips_through_its_bytes() -> None:
    original = doc(item("apis/a", path="a", protocols=["https"], nested={"x": [1, 2.5, None, True]}),
                   item("named-values/s", displayName="s", secret=True, value=None),
                   not_captured=(NotCaptured("named-values/s", "secret, value not captured"),))
    loaded = SnapshotDocument.from_bytes(original.to_bytes())
    assert loaded == original
    body = json.loads(gzip.decompress(original.to_bytes()))
    assert body["format"] == FORMAT and body["counts"] == {"apis": 1, "named-values": 1}
    assert body["notCaptured"] == [{"id": "named-values/s", "reason": "secret, value not captured"}]


def test_a_duplicate_item_is_refused() -> None:
    with pytest.raises(ValueError, match="read twice"):
        doc(item("apis/A"), item("apis/a"))


def _stored(body: object) -> bytes:
    return gzip.compress(canonical_json(body))


def _valid_body() -> dict[str, object]:
    return json.loads(gzip.decompress(doc(item("apis/a", path="a")).to_bytes()))


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda b: b.update(format="other"), "not an apim-dr snapshot"),
    (lambda b: b.update(instance=7), "'instance'"),
    (lambda b: b.update(takenAt="yesterday"), "'takenAt'"),
    (lambda b: b.update(takenAt="2026-12-01T02:00:00"), "time zone"),
    (lambda b: b.update(items={"a": 1}), "'items'"),
    (lambda b: b.update(items=[{"id": "users/x", "properties": {}}]), r"items\[0\].id"),
    (lambda b: b.update(items=[{"id": "apis/a", "properties": []}]), r"items\[0\].properties"),
    (lambda b: b.update(items=[{"id": "apis/a", "properties": {"path": "evil"}}]), "content hash"),
    (lambda b: b.update(notCaptured=[{"id": 1}]), r"notCaptured\[0\]"),
])
def test_a_damaged_or_foreign_document_is_refused_by_name(mutate: object, says: str) -> None:
    body = _valid_body()
    mutate(body)  # type: ignore[operator]
    with pytest.raises(SnapshotDocumentError, match=says):
        SnapshotDocument.from_bytes(_stored(body))


def test_hostile_bytes_are_refused_without_exhausting_memory() -> None:
    with pytest.raises(SnapshotDocumentError, match="not gzip"):
        SnapshotDocument.from_bytes(b"plain text")
    with pytest.raises(SnapshotDocumentError, match="nested deeper"):
        SnapshotDocument.from_bytes(gzip.compress(b"[" * 100_000 + b"]" * 100_000))
    bomb = gzip.compress(b" " * (4 * 1024 * 1024))  # 4 MB of spaces in 4 kB: only 1 MB + 1 byte is inflated
    with pytest.raises(SnapshotDocumentError, match="larger than 1048576 bytes"):
        SnapshotDocument.from_bytes(bomb, max_bytes=1024 * 1024)
    body = _valid_body()
    body["items"] = [{"id": f"apis/a{i}", "properties": {}} for i in range(MAX_ITEMS + 1)]
    with pytest.raises(SnapshotDocumentError, match="items; at most"):
        SnapshotDocument.from_json(body)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    deep_text = doc(item("apis/a", description="[" * 1000 + '\\"{' * 500))
    assert SnapshotDocument.from_bytes(deep_text.to_bytes()) == deep_text


# -- diff --------------------------------------------------------------------------------------
def test_diff_names_items_added_removed_and_changed_field_by_field() -> None:
    before = doc(item("apis/a", displayName="A", path="a", protocols=["https"], auth={"oAuth2": {"server": "s1"}}),
                 item("apis/gone", path="g"), item("named-values/n", value="1"))
    after = doc(item("apis/a", displayName="A", path="a2", protocols=["https", "http"],
                     auth={"oAuth2": {"server": "s2"}}, description="new"),
                item("apis/new", path="n"), item("named-values/n", value="1"))
    diff = diff_documents(before, after, base_label="A", other_label="B")
    assert diff.summary() == {"added": 1, "removed": 1, "changed": 1}
    changes = {c.item_id: c for c in diff.changes}
    assert changes["apis/new"].change is ChangeKind.ADDED and changes["apis/gone"].change is ChangeKind.REMOVED
    fields = {f.path: (f.before, f.after) for f in changes["apis/a"].fields}
    assert fields == {"path": ("a", "a2"), "protocols": (["https"], ["https", "http"]),
                      "auth.oAuth2.server": ("s1", "s2"), "description": (None, "new")}
    assert diff_documents(before, before, base_label="A", other_label="A").empty


def test_a_policy_change_is_a_unified_diff_of_its_xml() -> None:
    xml = "<policies>\n  <inbound>\n    <base />\n    <rate-limit calls=\"10\" />\n  </inbound>\n</policies>"
    before = doc(item("apis/a/policy", format="rawxml", value=xml))
    after = doc(item("apis/a/policy", format="rawxml", value=xml.replace('"10"', '"20"')))
    change = diff_documents(before, after, base_label="A", other_label="B").changes[0]
    assert change.fields == ()
    assert '-    <rate-limit calls="10" />' in change.policy_diff
    assert '+    <rate-limit calls="20" />' in change.policy_diff
    crlf = doc(item("apis/a/policy", format="rawxml", value=xml.replace("\n", "\r\n") + "  "))
    assert diff_documents(before, crlf, base_label="A", other_label="B").empty


def test_a_type_change_is_a_change() -> None:
    before, after = doc(item("apis/a", flag=True)), doc(item("apis/a", flag=1))
    assert not diff_documents(before, after, base_label="A", other_label="B").empty


# -- restore plan ------------------------------------------------------------------------------
SNAP = doc(
    item("named-values/backend-url", displayName="backend-url", value="https://b"),
    item("named-values/secret-key", displayName="secret-key", secret=True, value=None),
    item("named-values/kv", displayName="kv", secret=True, keyVault={"secretIdentifier": "https://v/secrets/kv"}),
    item("backends/orders", url="https://orders"),
    item("api-version-sets/v", displayName="v", versioningScheme="Segment"),
    item("apis/echo-api", path="echo", apiVersionSetId="/apiVersionSets/v"),
    item("apis/echo-api/operations/get", method="GET", urlTemplate="/"),
    item("apis/echo-api/policy", format="rawxml",
         value='<policies><inbound><set-backend-service backend-id="orders" />{{backend-url}}</inbound></policies>'),
    item("apis/other", path="other"),
    item("products/starter", displayName="Starter"),
    item("products/starter/apis/echo-api"),
    item("groups/developers", builtIn=True, type="system"),
    item("products/starter/groups/developers"),
)


def test_a_whole_restore_into_an_empty_target_creates_everything_in_dependency_order() -> None:
    plan = plan_restore(SNAP, {}, target_tier="StandardV2")
    creates = [str(s.item_id) for s in plan.steps]
    assert all(s.action is StepAction.CREATE for s in plan.steps)
    assert creates.index("named-values/backend-url") < creates.index("backends/orders") < creates.index("apis/echo-api")
    assert creates.index("api-version-sets/v") < creates.index("apis/echo-api") < creates.index(
        "apis/echo-api/operations/get")
    assert creates.index("products/starter/apis/echo-api") < creates.index("apis/echo-api/policy")
    # The secret's value was never captured: the plan is blocked until someone creates it by hand.
    assert [(p.item, p.check) for p in plan.problems] == [("named-values/secret-key", "secret-values-present")]
    assert "named-values/secret-key" not in creates
    assert plan.key_vault_secrets == ("https://v/secrets/kv",)


def test_a_whole_restore_updates_what_differs_deletes_what_is_extra_and_keeps_system_items() -> None:
    target = live(SNAP)
    target["apis/echo-api"] = LiveItem(item("apis/echo-api", path="broken", apiVersionSetId="/apiVersionSets/v"), "e9")
    target["apis/extra"] = LiveItem(item("apis/extra", path="x"), "e5")
    target["apis/extra/policy"] = LiveItem(item("apis/extra/policy", value="<policies/>"), "e6")
    del target["groups/developers"]
    target["groups/administrators"] = LiveItem(item("groups/administrators", builtIn=True, type="system"), "e7")
    plan = plan_restore(SNAP, target, target_tier="Standard")
    steps = [(s.action.value, str(s.item_id), s.etag) for s in plan.steps]
    assert ("update", "apis/echo-api", "e9") in steps
    assert ("create", "groups/developers", None) in steps
    # Deletes come last, children before parents, with the ETags read.
    assert steps[-2:] == [("delete", "apis/extra/policy", "e6"), ("delete", "apis/extra", "e5")]
    assert not any(s[1] == "groups/administrators" for s in steps)
    assert plan.kept == ("named-values/secret-key",) and not plan.blocked
    assert plan.unchanged == len(SNAP.items) - 3  # echo-api updated, developers created, secret kept


def test_a_one_api_restore_touches_that_api_its_parts_and_links_only() -> None:
    target = live(SNAP)
    del target["apis/echo-api"], target["apis/echo-api/operations/get"], target["apis/echo-api/policy"]
    del target["products/starter/apis/echo-api"]
    target["apis/echo-api/operations/post"] = LiveItem(item("apis/echo-api/operations/post", method="POST"), "e3")
    target["apis/other"] = LiveItem(item("apis/other", path="changed-elsewhere"), "e4")
    target["named-values/backend-url"] = LiveItem(item("named-values/backend-url", displayName="backend-url",
                                                       value="https://changed"), "e2")
    plan = plan_restore(SNAP, target, target_tier="StandardV2", selection=[parse_item_id("apis/echo-api")])
    steps = [(s.action.value, str(s.item_id)) for s in plan.steps]
    assert steps == [("create", "apis/echo-api"), ("create", "apis/echo-api/operations/get"),
                     ("create", "products/starter/apis/echo-api"), ("create", "apis/echo-api/policy"),
                     ("delete", "apis/echo-api/operations/post")]
    assert not plan.blocked  # the named value it uses exists in the target: left as it is


def test_a_one_api_restore_creates_missing_dependencies_and_says_why() -> None:
    target = {k: v for k, v in live(SNAP).items()
              if not k.startswith(("apis/echo-api", "backends/", "api-version-sets/", "products/starter/apis"))}
    plan = plan_restore(SNAP, target, target_tier="StandardV2", selection=[parse_item_id("apis/echo-api")])
    reasons = {str(s.item_id): s.reason for s in plan.steps}
    assert reasons["backends/orders"] == "needed by apis/echo-api/policy"
    assert reasons["api-version-sets/v"] == "needed by apis/echo-api"
    assert "named-values/backend-url" not in reasons


def test_choosing_an_item_the_snapshot_lacks_or_a_tier_without_it_blocks_the_plan() -> None:
    plan = plan_restore(SNAP, {}, target_tier="Consumption",
                        selection=[parse_item_id("apis/nope"), parse_item_id("products/starter")])
    checks = sorted((p.check, p.item) for p in plan.problems)
    assert checks == [("item-in-snapshot", "apis/nope"), ("tier-supports-item", "groups/developers"),
                      ("tier-supports-item", "products/starter/groups/developers")]


def test_an_unchanged_target_gives_an_empty_plan() -> None:
    plan = plan_restore(SNAP, live(SNAP), target_tier="StandardV2")
    assert plan.steps == () and plan.unchanged == len(SNAP.items) - 1


def test_references_follow_names_in_policies_links_and_relative_ids() -> None:
    by_display = {"backend-url": "named-values/backend-url"}
    policy = SNAP.item("apis/echo-api/policy")
    assert policy is not None
    assert references_of(policy, by_display) == {"backends/orders", "named-values/backend-url"}
    operation = item("apis/a/operations/o", request={"representations": [{"schemaId": "s1"}]})
    assert references_of(operation, {}) == {"apis/a/schemas/s1"}
    assert references_of(item("products/p/groups/g"), {}) == {"groups/g"}
    assert references_of(item("apis/a/operations/o/tags/t"), {}) == {"tags/t"}
    assert references_of(item("diagnostics/d", loggerId="/loggers/ai"), {}) == {"loggers/ai"}


# -- from ARM bodies to items ------------------------------------------------------------------
from dr_core.snapshots.sanitize import NOT_CAPTURED_SECRET, for_target, item_properties  # noqa: E402


def test_a_secret_named_value_keeps_no_value_and_is_listed_as_not_captured() -> None:
    body = {"properties": {"displayName": "k", "secret": True, "value": "s3cr3t", "tags": ["a"]}}
    properties, missing = item_properties(parse_item_id("named-values/k"), body, service_id=PROD)  # type: ignore[arg-type]
    assert properties == {"displayName": "k", "secret": True, "tags": ["a"]}
    assert missing == [NotCaptured("named-values/k", NOT_CAPTURED_SECRET)]
    assert "s3cr3t" not in json.dumps(properties)
    # APIM itself returns no value for a secret: still listed, because the snapshot lacks it.
    _, missing = item_properties(parse_item_id("named-values/k"), {"properties": {"secret": True}}, service_id=PROD)
    assert missing == [NotCaptured("named-values/k", NOT_CAPTURED_SECRET)]


def test_a_key_vault_reference_is_kept_without_its_volatile_status() -> None:
    body = {"properties": {"displayName": "kv", "secret": True, "keyVault": {
        "secretIdentifier": "https://v.vault.azure.net/secrets/kv", "identityClientId": None,
        "lastStatus": {"code": "Success", "timeStampUtc": "2026-12-01T00:00:00Z"}}}}
    properties, missing = item_properties(parse_item_id("named-values/kv"), body, service_id=PROD)  # type: ignore[arg-type]
    assert properties["keyVault"] == {"secretIdentifier": "https://v.vault.azure.net/secrets/kv",
                                      "identityClientId": None}
    assert missing == []


def test_backend_credentials_keep_named_value_references_and_drop_literals() -> None:
    body = {"properties": {"url": "https://b", "credentials": {
        "header": {"x-key": ["{{orders-key}}"], "x-literal": ["abc123"]},
        "query": {"code": ["{{code}}", "literal"]},
        "authorization": {"scheme": "Basic", "parameter": "dXNlcjpwYXNz"}},
        "proxy": {"url": "http://p", "username": "u", "password": "{{proxy-password}}"}}}
    properties, missing = item_properties(parse_item_id("backends/b"), body, service_id=PROD)  # type: ignore[arg-type]
    assert properties["credentials"] == {"header": {"x-key": ["{{orders-key}}"]}, "query": {},
                                         "authorization": {"scheme": "Basic"}}
    assert properties["proxy"] == {"url": "http://p", "username": "u", "password": "{{proxy-password}}"}
    assert sorted(n.item_id for n in missing) == ["backends/b#credentials.authorization.parameter",
                                                  "backends/b#credentials.header.x-literal",
                                                  "backends/b#credentials.query.code"]
    assert not {"abc123", "literal", "dXNlcjpwYXNz"} & set(json.dumps(properties).replace('"', " ").split())


def test_references_to_the_instance_are_stored_relative_and_restored_against_the_target() -> None:
    body = {"properties": {"apiVersionSetId": f"{PROD}/apiVersionSets/v1", "serviceUrl": "https://x",
                           "nested": [{"loggerId": f"{PROD.upper()}/loggers/ai"}],
                           "foreign": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/f"}}
    properties, _ = item_properties(parse_item_id("apis/a"), body, service_id=PROD)  # type: ignore[arg-type]
    assert properties["apiVersionSetId"] == "/apiVersionSets/v1"
    assert properties["nested"] == [{"loggerId": "/loggers/ai"}]
    assert properties["foreign"].startswith("/subscriptions/")  # type: ignore[union-attr]
    dr = PROD.replace("/prod", "/dr")
    restored = for_target(properties, target_id=dr)
    assert restored["apiVersionSetId"] == f"{dr}/apiVersionSets/v1"
    assert restored["nested"] == [{"loggerId": f"{dr}/loggers/ai"}]
    assert restored["foreign"] == body["properties"]["foreign"]
