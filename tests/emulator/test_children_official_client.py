"""The configuration child resources through the official client, unchanged (issue 15, "Emulator").

Every operation the configuration snapshots will use: read each kind, write it back with PUT/PATCH and
``If-Match``, delete it. Raw answers of the same requests are checked against the spec in
``test_children_raw.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement import models as m
from emu_support import CONSUMPTION, DR, DR_RG, PROD, PROD_RG, SERVICE_RGS, error_of, service_path

from emulator.apim import ApimEmulator

POLICY = (
    "<policies><inbound><base /><set-header name=\"x-env\" exists-action=\"override\"><value>{{env}}</value>"
    "</set-header></inbound><backend><base /></backend><outbound><base /></outbound>"
    "<on-error><base /></on-error></policies>"
)
KV_SECRET = "https://kv-contoso-apim.vault.azure.net/secrets/backend-key"


@pytest.fixture(autouse=True)
def anyone_may_write(emu: ApimEmulator) -> None:
    # The seed's role table is the app's backup operator role: child writes are authorised in test_children_rbac.py.
    emu.admin.set_arm_roles(None)


def names(items: Any) -> list[str]:
    return [str(item.name) for item in items]


def echo_operation(url: str = "/items/{id}", method: str = "GET") -> m.OperationContract:
    return m.OperationContract(
        display_name=f"{method} {url}", method=method, url_template=url,
        template_parameters=[m.ParameterContract(name="id", type="string", required=True)] if "{id}" in url else [],
    )


def new_api(client: ApiManagementClient, api_id: str = "inventory", path: str = "inventory") -> m.ApiContract:
    return client.api.begin_create_or_update(
        PROD_RG, PROD, api_id,
        m.ApiCreateOrUpdateParameter(display_name="Inventory", path=path, protocols=["https"],
                                     service_url="https://inventory.internal.contoso.com"),
        polling_interval=0,
    ).result()


def test_apis_create_read_update_delete_with_etags(client: ApiManagementClient) -> None:
    created = new_api(client)
    assert (created.name, created.display_name, created.path, created.api_revision, created.is_current) == (
        "inventory", "Inventory", "inventory", "1", True)
    etag = client.api.get_entity_tag(PROD_RG, PROD, "inventory")
    assert etag is True or etag is None  # the SDK returns a bool for HEAD
    got = client.api.get(PROD_RG, PROD, "inventory")
    assert got.service_url == "https://inventory.internal.contoso.com"
    assert "inventory" in names(client.api.list_by_service(PROD_RG, PROD))
    with pytest.raises(HttpResponseError) as stale:
        client.api.update(PROD_RG, PROD, "inventory", parameters=m.ApiUpdateContract(description="x"),
                          if_match='"AAAAAAAAAAA="')
    assert stale.value.status_code == 412 and error_of(stale.value).code == "PreconditionFailed"
    updated = client.api.update(PROD_RG, PROD, "inventory", parameters=m.ApiUpdateContract(description="Stock levels"),
                                if_match="*")
    assert updated.description == "Stock levels" and updated.path == "inventory"
    client.api.begin_delete(PROD_RG, PROD, "inventory", if_match="*", polling_interval=0).result()
    with pytest.raises(ResourceNotFoundError) as gone:
        client.api.get(PROD_RG, PROD, "inventory")
    assert (error_of(gone.value).code, error_of(gone.value).message) == ("ResourceNotFound", "Api not found.")


def test_operations_and_their_policies_and_tags(client: ApiManagementClient) -> None:
    new_api(client)
    client.named_value.begin_create_or_update(
        PROD_RG, PROD, "env", m.NamedValueCreateContract(display_name="env", value="prod"), polling_interval=0
    ).result()
    op = client.api_operation.create_or_update(PROD_RG, PROD, "inventory", "get-item", echo_operation())
    parameters = [p.name for p in op.template_parameters or []]
    assert (op.method, op.url_template, parameters) == ("GET", "/items/{id}", ["id"])
    assert names(client.api_operation.list_by_api(PROD_RG, PROD, "inventory")) == ["get-item"]
    policy = client.api_operation_policy.create_or_update(
        PROD_RG, PROD, "inventory", "get-item", "policy", m.PolicyContract(value=POLICY, format="xml"))
    assert policy.value == POLICY and policy.format == "xml"
    assert client.api_operation_policy.get(PROD_RG, PROD, "inventory", "get-item", "policy").value == POLICY
    assert len(client.api_operation_policy.list_by_operation(PROD_RG, PROD, "inventory", "get-item").value or []) == 1
    client.tag.create_or_update(PROD_RG, PROD, "stock", m.TagCreateUpdateParameters(display_name="Stock"))
    tag = client.tag.assign_to_operation(PROD_RG, PROD, "inventory", "get-item", "stock")
    assert (tag.name, tag.display_name) == ("stock", "Stock")
    assert names(client.tag.list_by_operation(PROD_RG, PROD, "inventory", "get-item")) == ["stock"]
    assert client.tag.get_by_operation(PROD_RG, PROD, "inventory", "get-item", "stock").display_name == "Stock"
    client.tag.detach_from_operation(PROD_RG, PROD, "inventory", "get-item", "stock")
    assert names(client.tag.list_by_operation(PROD_RG, PROD, "inventory", "get-item")) == []
    updated = client.api_operation.update(PROD_RG, PROD, "inventory", "get-item",
                                          parameters=m.OperationUpdateContract(description="One item"), if_match="*")
    assert updated.description == "One item" and updated.method == "GET"
    client.api_operation_policy.delete(PROD_RG, PROD, "inventory", "get-item", "policy", if_match="*")
    client.api_operation.delete(PROD_RG, PROD, "inventory", "get-item", if_match="*")
    assert names(client.api_operation.list_by_api(PROD_RG, PROD, "inventory")) == []


def test_api_policy_schema_tags_and_diagnostics(client: ApiManagementClient) -> None:
    new_api(client)
    client.api_policy.create_or_update(PROD_RG, PROD, "inventory", "policy",
                                       m.PolicyContract(value="<policies><inbound><base /></inbound></policies>"))
    assert "<base />" in str(client.api_policy.get(PROD_RG, PROD, "inventory", "policy").value)
    assert len(client.api_policy.list_by_api(PROD_RG, PROD, "inventory").value or []) == 1
    schema = client.api_schema.begin_create_or_update(
        PROD_RG, PROD, "inventory", "items",
        m.SchemaContract(content_type="application/vnd.oai.openapi.components+json",
                         components={"schemas": {"Item": {"type": "object"}}}),
        polling_interval=0,
    ).result()
    assert schema.content_type == "application/vnd.oai.openapi.components+json"
    assert names(client.api_schema.list_by_api(PROD_RG, PROD, "inventory")) == ["items"]
    client.tag.create_or_update(PROD_RG, PROD, "public", m.TagCreateUpdateParameters(display_name="Public"))
    client.tag.assign_to_api(PROD_RG, PROD, "inventory", "public")
    assert names(client.tag.list_by_api(PROD_RG, PROD, "inventory")) == ["public"]
    client.logger.create_or_update(PROD_RG, PROD, "insights", m.LoggerContract(
        logger_type="applicationInsights", credentials={"instrumentationKey": "11111111-2222-3333-4444-555555555555"}))
    diagnostic = client.api_diagnostic.create_or_update(
        PROD_RG, PROD, "inventory", "applicationinsights",
        m.DiagnosticContract(logger_id="/loggers/insights", always_log="allErrors"))
    assert diagnostic.logger_id == f"{service_path(PROD)}/loggers/insights"
    assert names(client.api_diagnostic.list_by_service(PROD_RG, PROD, "inventory")) == ["applicationinsights"]


def test_revisions_list_make_current_and_delete(client: ApiManagementClient) -> None:
    new_api(client)
    client.api_operation.create_or_update(PROD_RG, PROD, "inventory", "get-item", echo_operation())
    rev2 = client.api.begin_create_or_update(
        PROD_RG, PROD, "inventory;rev=2",
        m.ApiCreateOrUpdateParameter(path="inventory", source_api_id=f"{service_path(PROD)}/apis/inventory",
                                     api_revision_description="second"),
        polling_interval=0,
    ).result()
    assert (rev2.name, rev2.api_revision, rev2.is_current) == ("inventory;rev=2", "2", False)
    # A revision starts as a copy of its source, operations included.
    assert names(client.api_operation.list_by_api(PROD_RG, PROD, "inventory;rev=2")) == ["get-item"]
    client.api_operation.create_or_update(PROD_RG, PROD, "inventory;rev=2", "list-items", echo_operation("/items"))
    revisions = list(client.api_revision.list_by_service(PROD_RG, PROD, "inventory"))
    assert [(r.api_revision, r.is_current) for r in revisions] == [("1", True), ("2", False)]
    assert revisions[1].api_id == f"{service_path(PROD)}/apis/inventory;rev=2"
    assert "inventory;rev=2" not in names(client.api.list_by_service(PROD_RG, PROD))

    client.api.update(PROD_RG, PROD, "inventory;rev=2", parameters=m.ApiUpdateContract(is_current=True), if_match="*")
    current = client.api.get(PROD_RG, PROD, "inventory")
    assert (current.api_revision, current.is_current) == ("2", True)
    assert names(client.api_operation.list_by_api(PROD_RG, PROD, "inventory")) == ["get-item", "list-items"]
    assert names(client.api_operation.list_by_api(PROD_RG, PROD, "inventory;rev=1")) == ["get-item"]
    with pytest.raises(HttpResponseError) as refused:
        client.api.begin_delete(PROD_RG, PROD, "inventory;rev=2", if_match="*", polling_interval=0).result()
    assert error_of(refused.value).message == "Cannot delete the current revision of an API."
    client.api.begin_delete(PROD_RG, PROD, "inventory;rev=1", if_match="*", polling_interval=0).result()
    assert [r.api_revision for r in client.api_revision.list_by_service(PROD_RG, PROD, "inventory")] == ["2"]


def test_version_sets(client: ApiManagementClient) -> None:
    version_set = client.api_version_set.create_or_update(
        PROD_RG, PROD, "inventory-versions",
        m.ApiVersionSetContract(display_name="Inventory", versioning_scheme="Segment"))
    assert version_set.versioning_scheme == "Segment"
    client.api.begin_create_or_update(
        PROD_RG, PROD, "inventory-v2",
        m.ApiCreateOrUpdateParameter(display_name="Inventory", path="inventory", protocols=["https"],
                                     api_version="v2", api_version_set_id="/apiVersionSets/inventory-versions"),
        polling_interval=0,
    ).result()
    v1 = client.api.begin_create_or_update(
        PROD_RG, PROD, "inventory-v1",
        m.ApiCreateOrUpdateParameter(display_name="Inventory", path="inventory", protocols=["https"],
                                     api_version="v1", api_version_set_id="/apiVersionSets/inventory-versions"),
        polling_interval=0,
    ).result()
    assert v1.api_version_set_id == f"{service_path(PROD)}/apiVersionSets/inventory-versions"
    with pytest.raises(HttpResponseError) as in_use:
        client.api_version_set.delete(PROD_RG, PROD, "inventory-versions", if_match="*")
    assert error_of(in_use.value).code == "ValidationError"
    assert "inventory-versions" in names(client.api_version_set.list_by_service(PROD_RG, PROD))


def test_products_with_api_and_group_links_and_policy(client: ApiManagementClient) -> None:
    product = client.product.create_or_update(
        PROD_RG, PROD, "gold", m.ProductContract(display_name="Gold", subscription_required=True, state="published"))
    assert (product.display_name, product.state) == ("Gold", "published")
    api = client.product_api.create_or_update(PROD_RG, PROD, "gold", "echo-api")
    assert api.name == "echo-api" and api.path == "echo"
    assert names(client.product_api.list_by_product(PROD_RG, PROD, "gold")) == ["echo-api"]
    assert client.product_api.check_entity_exists(PROD_RG, PROD, "gold", "echo-api") is True
    with pytest.raises(ResourceNotFoundError) as unknown_api:
        client.product_api.create_or_update(PROD_RG, PROD, "gold", "no-such-api")
    assert error_of(unknown_api.value).message == "Api not found."
    group = client.group.create_or_update(PROD_RG, PROD, "partners", m.GroupCreateParameters(display_name="Partners"))
    assert (group.type_properties_type, group.built_in) == ("custom", False)
    client.product_group.create_or_update(PROD_RG, PROD, "gold", "partners")
    client.product_group.create_or_update(PROD_RG, PROD, "gold", "developers")
    assert names(client.product_group.list_by_product(PROD_RG, PROD, "gold")) == ["partners", "developers"]
    client.product_policy.create_or_update(PROD_RG, PROD, "gold", "policy",
                                           m.PolicyContract(value="<policies><inbound><base /></inbound></policies>"))
    assert len(list(client.product_policy.list_by_product(PROD_RG, PROD, "gold"))) == 1
    client.tag.create_or_update(PROD_RG, PROD, "premium", m.TagCreateUpdateParameters(display_name="Premium"))
    client.tag.assign_to_product(PROD_RG, PROD, "gold", "premium")
    assert names(client.tag.list_by_product(PROD_RG, PROD, "gold")) == ["premium"]
    assert "gold" in names(client.api_product.list_by_apis(PROD_RG, PROD, "echo-api"))
    # Deleting the group removes its product link, as APIM's delete does.
    client.group.delete(PROD_RG, PROD, "partners", if_match="*")
    assert names(client.product_group.list_by_product(PROD_RG, PROD, "gold")) == ["developers"]
    client.product_api.delete(PROD_RG, PROD, "gold", "echo-api")
    with pytest.raises(ResourceNotFoundError):  # HEAD answers 404: the SDK raises rather than return False
        client.product_api.check_entity_exists(PROD_RG, PROD, "gold", "echo-api")
    client.product.delete(PROD_RG, PROD, "gold", if_match="*")
    assert "gold" not in names(client.product.list_by_service(PROD_RG, PROD))


def test_named_values_plain_secret_and_key_vault(client: ApiManagementClient) -> None:
    plain = client.named_value.begin_create_or_update(
        PROD_RG, PROD, "region", m.NamedValueCreateContract(display_name="region", value="westeurope", tags=["geo"]),
        polling_interval=0).result()
    assert (plain.value, plain.secret, plain.tags) == ("westeurope", False, ["geo"])
    secret = client.named_value.begin_create_or_update(
        PROD_RG, PROD, "api-key", m.NamedValueCreateContract(display_name="api-key", value="s3cr3t", secret=True),
        polling_interval=0).result()
    assert secret.value is None and secret.secret is True
    assert client.named_value.get(PROD_RG, PROD, "api-key").value is None
    assert client.named_value.list_value(PROD_RG, PROD, "api-key").value == "s3cr3t"
    key_vault = client.named_value.begin_create_or_update(
        PROD_RG, PROD, "backend-key",
        m.NamedValueCreateContract(display_name="backend-key", key_vault=m.KeyVaultContractCreateProperties(
            secret_identifier=KV_SECRET)), polling_interval=0).result()
    assert key_vault.key_vault is not None and key_vault.key_vault.secret_identifier == KV_SECRET
    assert key_vault.value is None and key_vault.key_vault.last_status is not None
    updated = client.named_value.begin_update(
        PROD_RG, PROD, "region", parameters=m.NamedValueUpdateParameters(value="northeurope"), if_match="*",
        polling_interval=0).result()
    assert updated.value == "northeurope"
    client.named_value.delete(PROD_RG, PROD, "region", if_match="*")
    assert "region" not in names(client.named_value.list_by_service(PROD_RG, PROD))


def test_key_vault_references_need_an_identity_of_the_service(client: ApiManagementClient) -> None:
    # apim-contoso-dev has no managed identity: APIM could not read the secret.
    dev_rg = SERVICE_RGS["apim-contoso-dev"]
    with pytest.raises(HttpResponseError) as refused:
        client.named_value.begin_create_or_update(
            dev_rg, "apim-contoso-dev", "backend-key",
            m.NamedValueCreateContract(display_name="backend-key", key_vault=m.KeyVaultContractCreateProperties(
                secret_identifier=KV_SECRET)), polling_interval=0).result()
    assert error_of(refused.value).code == "ValidationError"
    # A user-assigned identity the service has works; one it lacks is refused naming it.
    ok = client.named_value.begin_create_or_update(
        DR_RG, DR, "backend-key",
        m.NamedValueCreateContract(display_name="backend-key", key_vault=m.KeyVaultContractCreateProperties(
            secret_identifier=KV_SECRET, identity_client_id="f30d1dd2-e253-481b-8360-007cd4b24352")),
        polling_interval=0).result()
    assert ok.key_vault is not None and ok.key_vault.identity_client_id == "f30d1dd2-e253-481b-8360-007cd4b24352"


def test_backends_loggers_diagnostics_and_fragments(client: ApiManagementClient) -> None:
    backend = client.backend.create_or_update(PROD_RG, PROD, "orders", m.BackendContract(
        url="https://orders.internal.contoso.com", protocol="http", description="Orders"))
    assert (backend.url, backend.protocol) == ("https://orders.internal.contoso.com", "http")
    client.backend.update(PROD_RG, PROD, "orders", parameters=m.BackendUpdateParameters(title="Orders backend"),
                          if_match="*")
    assert client.backend.get(PROD_RG, PROD, "orders").title == "Orders backend"
    logger = client.logger.create_or_update(PROD_RG, PROD, "insights", m.LoggerContract(
        logger_type="applicationInsights", credentials={"instrumentationKey": "11111111-2222-3333-4444-555555555555"}))
    # The key is kept in a secret named value and referenced, as APIM does.
    key_ref = (logger.credentials or {})["instrumentationKey"]
    assert key_ref.startswith("{{Logger-Credentials--") and key_ref.endswith("}}")
    named = client.named_value.get(PROD_RG, PROD, key_ref[2:-2])
    assert named.secret is True and named.value is None
    assert client.named_value.list_value(PROD_RG, PROD, key_ref[2:-2]).value == "11111111-2222-3333-4444-555555555555"
    client.diagnostic.create_or_update(PROD_RG, PROD, "applicationinsights",
                                       m.DiagnosticContract(logger_id=logger.id, verbosity="information"))
    assert names(client.diagnostic.list_by_service(PROD_RG, PROD)) == ["applicationinsights"]
    with pytest.raises(HttpResponseError) as used:
        client.logger.delete(PROD_RG, PROD, "insights", if_match="*")
    assert "is used by the following entities" in error_of(used.value).message
    fragment = client.policy_fragment.begin_create_or_update(PROD_RG, PROD, "cors", m.PolicyFragmentContract(
        value="<fragment><cors><allowed-origins><origin>*</origin></allowed-origins></cors></fragment>",
        description="CORS for everyone"), polling_interval=0).result()
    assert fragment.description == "CORS for everyone"
    client.policy.create_or_update(PROD_RG, PROD, "policy", m.PolicyContract(
        value="<policies><inbound><include-fragment fragment-id=\"cors\" /></inbound></policies>"))
    references = client.policy_fragment.list_references(PROD_RG, PROD, "cors")
    assert [r.id for r in references.value or []] == [f"{service_path(PROD)}/policies/policy"]
    with pytest.raises(HttpResponseError) as in_use:
        client.policy_fragment.delete(PROD_RG, PROD, "cors", if_match="*")
    assert error_of(in_use.value).message == (
        "The Policy Fragment 'cors' is used by the following entities:\r\n/policies/policy\r\n")


def test_service_policy_tags_groups_and_certificates(client: ApiManagementClient) -> None:
    default = client.policy.get(PROD_RG, PROD, "policy")
    assert "<forward-request />" in str(default.value)
    assert names(client.policy.list_by_service(PROD_RG, PROD)) == ["policy"]
    client.tag.create_or_update(PROD_RG, PROD, "internal", m.TagCreateUpdateParameters(display_name="Internal"))
    client.tag.update(PROD_RG, PROD, "internal", parameters=m.TagCreateUpdateParameters(display_name="Internal only"),
                      if_match="*")
    assert client.tag.get(PROD_RG, PROD, "internal").display_name == "Internal only"
    groups = {str(g.name): g for g in client.group.list_by_service(PROD_RG, PROD)}
    assert {"administrators", "developers", "guests"} <= set(groups)
    assert groups["administrators"].built_in is True and groups["administrators"].type_properties_type == "system"
    with pytest.raises(HttpResponseError) as builtin:
        client.group.delete(PROD_RG, PROD, "administrators", if_match="*")
    assert error_of(builtin.value).code == "ValidationError"
    certificate = client.certificate.create_or_update(
        PROD_RG, PROD, "backend-ca", m.CertificateCreateOrUpdateParameters(
        key_vault=m.KeyVaultContractCreateProperties(
            secret_identifier="https://kv-contoso-apim.vault.azure.net/secrets/backend-ca")))
    assert certificate.subject == "CN=backend-ca" and len(certificate.thumbprint) == 40
    assert names(client.certificate.list_by_service(PROD_RG, PROD)) == ["backend-ca"]


def test_subscriptions_keys_are_never_listed(client: ApiManagementClient) -> None:
    created = client.subscription.create_or_update(PROD_RG, PROD, "mobile", m.SubscriptionCreateParameters(
        scope="/products/starter", display_name="Mobile app", owner_id="/users/1", primary_key="p" * 32))
    assert created.primary_key is None and created.state == "submitted"
    assert created.scope == f"{service_path(PROD)}/products/starter"
    keys = client.subscription.list_secrets(PROD_RG, PROD, "mobile")
    assert keys.primary_key == "p" * 32 and keys.secondary_key
    assert {"master", "fabrikam-partners", "mobile"} <= set(names(client.subscription.list(PROD_RG, PROD)))


def test_consumption_has_no_groups(client: ApiManagementClient) -> None:
    rg = SERVICE_RGS[CONSUMPTION]
    with pytest.raises(HttpResponseError) as refused:
        list(client.group.list_by_service(rg, CONSUMPTION))
    assert error_of(refused.value).code == "MethodNotAllowedInPricingTier"
    with pytest.raises(HttpResponseError):
        client.product_group.create_or_update(rg, CONSUMPTION, "starter", "developers")
    assert names(client.api.list_by_service(rg, CONSUMPTION)) == ["webhooks"]


def test_developer_portal_settings_and_content(client: ApiManagementClient, raw: Any) -> None:
    signup = client.sign_up_settings.get(PROD_RG, PROD)
    assert signup.enabled is True
    client.sign_up_settings.update(PROD_RG, PROD, if_match="*", parameters=m.PortalSignupSettings(
        enabled=False, terms_of_service=m.TermsOfServiceProperties(text="Terms", enabled=True, consent_required=True)))
    changed = client.sign_up_settings.get(PROD_RG, PROD)
    assert changed.enabled is False and changed.terms_of_service is not None
    assert changed.terms_of_service.text == "Terms"
    client.sign_in_settings.create_or_update(PROD_RG, PROD, m.PortalSigninSettings(enabled=True))
    assert client.sign_in_settings.get(PROD_RG, PROD).enabled is True
    delegation = client.delegation_settings.create_or_update(PROD_RG, PROD, m.PortalDelegationSettings(
        url="https://contoso.com/delegation", subscriptions=m.SubscriptionsDelegationSettingsProperties(enabled=True),
        validation_key="bm90LWEtcmVhbC1rZXk="))
    assert delegation.url == "https://contoso.com/delegation" and delegation.validation_key is None
    assert client.delegation_settings.list_secrets(PROD_RG, PROD).validation_key == "bm90LWEtcmVhbC1rZXk="
    assert sorted(str(s.name) for s in client.portal_settings.list_by_service(PROD_RG, PROD).value or []) == [
        "delegation", "signin", "signup"]
    with pytest.raises(HttpResponseError) as no_url:
        client.delegation_settings.create_or_update(PROD_RG, PROD, m.PortalDelegationSettings(
            user_registration=m.RegistrationDelegationSettingsProperties(enabled=True)))
    assert no_url.value.status_code == 400

    with pytest.raises(HttpResponseError) as builtin:
        client.content_type.create_or_update(PROD_RG, PROD, "page", m.ContentTypeContract(name="Page"))
    assert builtin.value.status_code == 400
    content_type = client.content_type.create_or_update(PROD_RG, PROD, "c-faq", m.ContentTypeContract(
        name="FAQ", description="Questions", schema={"properties": {"q": {"type": "string"}}}, version="1.0.0"))
    assert content_type.name == "c-faq"
    item = client.content_item.create_or_update(PROD_RG, PROD, "c-faq", "first", m.ContentItemContract(
        properties={"q": "What is this?", "nested": {"a": [1, 2]}}))
    assert item.properties == {"q": "What is this?", "nested": {"a": [1, 2]}}
    assert names(client.content_item.list_by_service(PROD_RG, PROD, "c-faq")) == ["first"]
    assert "c-faq" in names(client.content_type.list_by_service(PROD_RG, PROD))
    client.content_type.delete(PROD_RG, PROD, "c-faq", if_match="*")
    assert "c-faq" not in names(client.content_type.list_by_service(PROD_RG, PROD))
