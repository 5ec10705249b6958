"""A native backup carries every child resource and a restore brings back exactly the backup time's.

The configuration is read the way the configuration snapshots will read it: every kind through the
official client. Backup -> change children -> restore -> equal to the backup time's, into the same
instance and into another; secrets included (APIM's own backup carries them).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models as m
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from azure.storage.blob import BlobServiceClient
from emu_support import ACCOUNT, CONTAINER, DR, DR_RG, PROD, PROD_RG, unique

from emulator.apim import ApimEmulator

KEY = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(autouse=True)
def anyone_may_write(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)


def _props(model: Any) -> dict[str, Any]:
    """A model's readable content, without what names the instance (its id, and ids it refers to by)."""
    data = model.as_dict()
    data.pop("id", None)
    for key in ("api_version_set_id", "logger_id", "scope", "owner_id"):
        if isinstance(data.get(key), str):
            data[key] = data[key].split("/service/", 1)[-1].split("/", 1)[-1]
    return data


def read_configuration(client: ApiManagementClient, rg: str, name: str) -> dict[str, Any]:
    """Every item of the configuration, by kind, through the official client only."""
    c = client
    apis: dict[str, Any] = {}
    for api in c.api.list_by_service(rg, name):
        api_id = str(api.name)
        revisions = {}
        for rev in c.api_revision.list_by_service(rg, name, api_id):
            rev_name = f"{api_id};rev={rev.api_revision}"
            operations = {}
            for op in c.api_operation.list_by_api(rg, name, rev_name):
                policies = [_props(p) for p in c.api_operation_policy.list_by_operation(rg, name, rev_name,
                                                                                         str(op.name)).value or []]
                tags = sorted(str(t.name) for t in c.tag.list_by_operation(rg, name, rev_name, str(op.name)))
                operations[str(op.name)] = {"op": _props(op), "policies": policies, "tags": tags}
            revisions[str(rev.api_revision)] = {
                "api": {k: v for k, v in _props(c.api.get(rg, name, rev_name)).items() if k != "name"},
                "current": rev.is_current,
                "operations": operations,
                "policies": [_props(p) for p in c.api_policy.list_by_api(rg, name, rev_name).value or []],
                "schemas": [_props(s) for s in c.api_schema.list_by_api(rg, name, rev_name)],
                "tags": sorted(str(t.name) for t in c.tag.list_by_api(rg, name, rev_name)),
                "diagnostics": [_props(d) for d in c.api_diagnostic.list_by_service(rg, name, rev_name)],
            }
        apis[api_id] = revisions
    products = {}
    for product in c.product.list_by_service(rg, name):
        pid = str(product.name)
        products[pid] = {
            "product": _props(product),
            "apis": [str(a.name) for a in c.product_api.list_by_product(rg, name, pid)],
            "groups": [str(g.name) for g in c.product_group.list_by_product(rg, name, pid)],
            "policies": [_props(p) for p in c.product_policy.list_by_product(rg, name, pid)],
            "tags": [str(t.name) for t in c.tag.list_by_product(rg, name, pid)],
        }
    named_values = {}
    for nv in c.named_value.list_by_service(rg, name):
        item = _props(nv)
        if item.get("key_vault"):
            item["key_vault"].pop("last_status", None)
        # A snapshot never reads a secret's value; the test does, to prove the backup carried it.
        if nv.secret and not nv.key_vault:
            item["revealed"] = c.named_value.list_value(rg, name, str(nv.name)).value
        named_values[str(nv.name)] = item
    return {
        "policy": [_props(p) for p in c.policy.list_by_service(rg, name)],
        "apis": apis,
        "apiVersionSets": [_props(v) for v in c.api_version_set.list_by_service(rg, name)],
        "products": products,
        "namedValues": named_values,
        "backends": [_props(b) for b in c.backend.list_by_service(rg, name)],
        "loggers": [_props(lg) for lg in c.logger.list_by_service(rg, name)],
        "diagnostics": [_props(d) for d in c.diagnostic.list_by_service(rg, name)],
        "policyFragments": [_props(f) for f in c.policy_fragment.list_by_service(rg, name)],
        "tags": [_props(t) for t in c.tag.list_by_service(rg, name)],
        "groups": [_props(g) for g in c.group.list_by_service(rg, name)],
        "certificates": [_props(x) | {"key_vault": None} for x in c.certificate.list_by_service(rg, name)],
        "subscriptions": [_props(s) for s in c.subscription.list(rg, name)],
    }


def build_configuration(c: ApiManagementClient, rg: str, name: str) -> None:
    c.named_value.begin_create_or_update(rg, name, "env", m.NamedValueCreateContract(
        display_name="env", value="prod"), polling_interval=0).result()
    c.named_value.begin_create_or_update(rg, name, "token", m.NamedValueCreateContract(
        display_name="token", value="s3cr3t-t0ken", secret=True), polling_interval=0).result()
    c.tag.create_or_update(rg, name, "public", m.TagCreateUpdateParameters(display_name="Public"))
    c.group.create_or_update(rg, name, "partners", m.GroupCreateParameters(display_name="Partners"))
    c.backend.create_or_update(rg, name, "inventory", m.BackendContract(url="https://inv.contoso.com", protocol="http"))
    c.logger.create_or_update(rg, name, "insights", m.LoggerContract(
        logger_type="applicationInsights", credentials={"instrumentationKey": KEY}))
    c.diagnostic.create_or_update(rg, name, "applicationinsights", m.DiagnosticContract(logger_id="/loggers/insights"))
    c.policy_fragment.begin_create_or_update(rg, name, "auth", m.PolicyFragmentContract(
        value="<fragment><set-header name=\"Authorization\" exists-action=\"override\"><value>{{token}}</value>"
              "</set-header></fragment>"), polling_interval=0).result()
    c.certificate.create_or_update(rg, name, "ca", m.CertificateCreateOrUpdateParameters(
        key_vault=m.KeyVaultContractCreateProperties(secret_identifier="https://kv.vault.azure.net/secrets/ca")))
    c.api_version_set.create_or_update(rg, name, "inv", m.ApiVersionSetContract(
        display_name="Inventory", versioning_scheme="Header", version_header_name="api-version"))
    c.api.begin_create_or_update(rg, name, "inventory", m.ApiCreateOrUpdateParameter(
        display_name="Inventory", path="inventory", protocols=["https"], api_version="v1",
        api_version_set_id="/apiVersionSets/inv"), polling_interval=0).result()
    c.api_operation.create_or_update(rg, name, "inventory", "list", m.OperationContract(
        display_name="List", method="GET", url_template="/items"))
    c.api_operation_policy.create_or_update(rg, name, "inventory", "list", "policy", m.PolicyContract(
        value="<policies><inbound><base /><include-fragment fragment-id=\"auth\" /></inbound></policies>"))
    c.tag.assign_to_operation(rg, name, "inventory", "list", "public")
    c.api_policy.create_or_update(rg, name, "inventory", "policy", m.PolicyContract(
        value="<policies><inbound><set-variable name=\"env\" value=\"{{env}}\" /></inbound></policies>"))
    c.api_schema.begin_create_or_update(rg, name, "inventory", "items", m.SchemaContract(
        content_type="application/json", value="{}"), polling_interval=0).result()
    c.tag.assign_to_api(rg, name, "inventory", "public")
    c.api_diagnostic.create_or_update(rg, name, "inventory", "applicationinsights",
                                      m.DiagnosticContract(logger_id="/loggers/insights", verbosity="error"))
    c.api.begin_create_or_update(rg, name, "inventory;rev=2", m.ApiCreateOrUpdateParameter(
        path="inventory", api_revision_description="next"), polling_interval=0).result()
    c.api_operation.create_or_update(rg, name, "inventory;rev=2", "count", m.OperationContract(
        display_name="Count", method="GET", url_template="/count"))
    c.product.create_or_update(rg, name, "gold", m.ProductContract(display_name="Gold", state="published"))
    c.product_api.create_or_update(rg, name, "gold", "inventory")
    c.product_group.create_or_update(rg, name, "gold", "partners")
    c.product_policy.create_or_update(rg, name, "gold", "policy", m.PolicyContract(value="<policies />"))
    c.tag.assign_to_product(rg, name, "gold", "public")
    c.subscription.create_or_update(rg, name, "gold-sub", m.SubscriptionCreateParameters(
        scope="/products/gold", display_name="Gold subscription", state="active"))
    c.policy.create_or_update(rg, name, "policy", m.PolicyContract(
        value="<policies><inbound /><backend><forward-request /></backend><outbound /></policies>"))


def change_configuration(c: ApiManagementClient, rg: str, name: str) -> None:
    c.api_operation_policy.delete(rg, name, "inventory", "list", "policy", if_match="*")
    c.api.update(rg, name, "inventory", if_match="*", parameters=m.ApiUpdateContract(display_name="Changed"))
    c.product_api.delete(rg, name, "gold", "inventory")
    c.named_value.begin_update(rg, name, "token", if_match="*", parameters=m.NamedValueUpdateParameters(
        value="another"), polling_interval=0).result()
    c.tag.create_or_update(rg, name, "extra", m.TagCreateUpdateParameters(display_name="Extra"))
    c.api.update(rg, name, "inventory;rev=2", if_match="*", parameters=m.ApiUpdateContract(is_current=True))
    c.api.begin_delete(rg, name, "orders-api", if_match="*", polling_interval=0).result()


def backup(client: ApiManagementClient, rg: str, name: str) -> Params:
    params = Params(storage_account=ACCOUNT, container_name=CONTAINER, backup_name=unique(),
                    access_type="SystemAssignedManagedIdentity")
    client.api_management_service.begin_backup(rg, name, params, polling_interval=1).result()
    return params


def test_backup_change_restore_brings_back_every_child(
    client: ApiManagementClient, emu: ApimEmulator, blobs: BlobServiceClient
) -> None:
    build_configuration(client, PROD_RG, PROD)
    at_backup = read_configuration(client, PROD_RG, PROD)
    exported = emu.admin.service(PROD)["configuration"]
    params = backup(client, PROD_RG, PROD)
    blob = json.loads(blobs.get_blob_client(CONTAINER, params.backup_name).download_blob().readall())
    # The blob holds the whole configuration but the developer portal's content (APIM's backup omits it).
    assert blob["configuration"] == {k: v for k, v in exported.items() if k != "contentTypes"}

    change_configuration(client, PROD_RG, PROD)
    changed = read_configuration(client, PROD_RG, PROD)
    assert changed != at_backup
    for section in ("apis", "products", "namedValues", "tags"):
        assert changed[section] != at_backup[section], section

    client.api_management_service.begin_restore(PROD_RG, PROD, params, polling_interval=1).result()
    assert read_configuration(client, PROD_RG, PROD) == at_backup
    assert emu.admin.service(PROD)["configuration"] == exported


def test_developer_portal_content_is_neither_backed_up_nor_restored(client: ApiManagementClient) -> None:
    client.content_type.create_or_update(PROD_RG, PROD, "c-news", m.ContentTypeContract(description="News"))
    params = backup(client, PROD_RG, PROD)
    client.content_type.create_or_update(DR_RG, DR, "c-faq", m.ContentTypeContract(description="FAQ"))
    client.content_item.create_or_update(DR_RG, DR, "c-faq", "q1", m.ContentItemContract(properties={"q": "?"}))
    client.api_management_service.begin_restore(DR_RG, DR, params, polling_interval=1).result()
    assert [t.name for t in client.content_type.list_by_service(DR_RG, DR)] == ["c-faq"]
    assert [i.name for i in client.content_item.list_by_service(DR_RG, DR, "c-faq")] == ["q1"]
    assert [a.name for a in client.api.list_by_service(DR_RG, DR)] == [
        a.name for a in client.api.list_by_service(PROD_RG, PROD)]


def test_restore_into_another_instance_of_the_same_tier(client: ApiManagementClient, emu: ApimEmulator) -> None:
    build_configuration(client, PROD_RG, PROD)
    at_backup = read_configuration(client, PROD_RG, PROD)
    params = backup(client, PROD_RG, PROD)
    assert read_configuration(client, DR_RG, DR) != at_backup
    client.api_management_service.begin_restore(DR_RG, DR, params, polling_interval=1).result()
    assert read_configuration(client, DR_RG, DR) == at_backup
    # Ids name the instance they are read from, never the backup's source.
    dr_api = client.api.get(DR_RG, DR, "inventory")
    assert dr_api.id is not None and f"/service/{DR}/apis/inventory" in dr_api.id
    assert dr_api.api_version_set_id is not None and f"/service/{DR}/apiVersionSets/inv" in dr_api.api_version_set_id


def test_a_failed_restore_changes_no_child(client: ApiManagementClient, emu: ApimEmulator) -> None:
    build_configuration(client, PROD_RG, PROD)
    params = backup(client, PROD_RG, PROD)
    change_configuration(client, PROD_RG, PROD)
    before = read_configuration(client, PROD_RG, PROD)
    emu.admin.fail_next_operation(PROD, code="RestoreFailed", message="injected")
    with pytest.raises(Exception, match="injected"):
        client.api_management_service.begin_restore(PROD_RG, PROD, params, polling_interval=1).result()
    assert read_configuration(client, PROD_RG, PROD) == before


def test_a_corrupt_configuration_in_the_blob_fails_the_restore(
    client: ApiManagementClient, emu: ApimEmulator, blobs: BlobServiceClient
) -> None:
    params = backup(client, PROD_RG, PROD)
    blob = blobs.get_blob_client(CONTAINER, params.backup_name)
    snapshot = json.loads(blob.download_blob().readall())
    snapshot["configuration"]["products"][0]["apis"] = ["no-such-api"]
    blob.upload_blob(json.dumps(snapshot), overwrite=True)
    before = emu.admin.service(DR)["configuration"]
    with pytest.raises(Exception, match="not a valid API Management backup") as failed:
        client.api_management_service.begin_restore(DR_RG, DR, params, polling_interval=1).result()
    assert "configuration.products[0].apis[0]" in str(failed.value)
    assert emu.admin.service(DR)["configuration"] == before
