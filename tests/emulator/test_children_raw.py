"""The configuration child resources over raw HTTP: every answer checked against the spec, bad input refused.

``RawArm`` validates each body against the schema the spec's own operation for that path and status
answers (``SpecValidator.response_definition``), and strictly against the SDK model of that name; the
tests here drive every kind through PUT, GET, HEAD, list, PATCH and DELETE, and then what must fail.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from emu_support import API_VERSION, CONSUMPTION, DR, PROD, RawArm, SpecValidator, service_path

from emulator.apim import ApimEmulator

S = service_path(PROD)
D = service_path(DR)  # the standby: a sparse configuration to build on
GUID = "11111111-2222-3333-4444-555555555555"
POLICY = "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base /></outbound></policies>"

# (path below the service, PUT body or None for a link, PATCH properties or None) in dependency order.
CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = [
    ("tags/t1", {"properties": {"displayName": "T1"}}, {"displayName": "Tag one"}),
    ("groups/g1", {"properties": {"displayName": "G1", "description": "custom"}}, {"description": "changed"}),
    ("namedValues/nv1", {"properties": {"displayName": "nv1", "value": "v1", "tags": ["a"]}}, {"value": "v2"}),
    ("namedValues/nv2", {"properties": {"displayName": "nv2", "value": "hush", "secret": True}}, None),
    ("certificates/c1", {"properties": {"keyVault": {
        "secretIdentifier": "https://kv-contoso-apim.vault.azure.net/secrets/c1"}}}, None),
    ("backends/b1", {"properties": {"url": "https://b1.example.com", "protocol": "http",
                                    "credentials": {"header": {"x-key": ["{{nv2}}"]}}}}, {"title": "B1"}),
    ("loggers/l1", {"properties": {"loggerType": "applicationInsights",
                                   "credentials": {"instrumentationKey": GUID}}}, {"description": "AI"}),
    ("diagnostics/applicationinsights", {"properties": {"loggerId": "/loggers/l1"}}, {"verbosity": "error"}),
    ("policyFragments/f1", {"properties": {"value": "<fragment><set-header name=\"a\" exists-action=\"override\">"
                                                    "<value>{{nv1}}</value></set-header></fragment>"}}, None),
    ("schemas/s1", {"properties": {"schemaType": "json", "document": {"type": "object"}}}, None),
    ("apiVersionSets/vs1", {"properties": {"displayName": "VS", "versioningScheme": "Query",
                                           "versionQueryName": "v"}}, {"description": "versions"}),
    ("apis/a1", {"properties": {"displayName": "A1", "path": "a1", "protocols": ["https"], "apiVersion": "v1",
                                "apiVersionSetId": "/apiVersionSets/vs1"}}, {"description": "first"}),
    ("apis/a1/operations/o1", {"properties": {
        "displayName": "Get one", "method": "get", "urlTemplate": "/things/{id}",
        "templateParameters": [{"name": "id", "type": "string", "required": True}]}}, {"description": "one"}),
    ("apis/a1/operations/o1/policies/policy", {"properties": {"value": POLICY, "format": "xml"}}, None),
    ("apis/a1/operations/o1/tags/t1", None, None),
    ("apis/a1/policies/policy", {"properties": {"value": "<policies><inbound><include-fragment fragment-id=\"f1\" />"
                                                         "</inbound></policies>"}}, None),
    ("apis/a1/schemas/sc1", {"properties": {"contentType": "application/vnd.oai.openapi.components+json",
                                            "document": {"components": {"schemas": {}}}}}, None),
    ("apis/a1/tags/t1", None, None),
    ("apis/a1/diagnostics/applicationinsights", {"properties": {"loggerId": f"{D}/loggers/l1"}}, {"metrics": True}),
    ("products/p1", {"properties": {"displayName": "P1", "state": "published"}}, {"terms": "Be nice."}),
    ("products/p1/apis/a1", None, None),
    ("products/p1/groups/g1", None, None),
    ("products/p1/policies/policy", {"properties": {"value": POLICY}}, None),
    ("products/p1/tags/t1", None, None),
    ("subscriptions/sub1", {"properties": {"scope": "/products/p1", "displayName": "Sub 1", "state": "active"}},
     {"displayName": "Subscription 1"}),
    ("policies/policy", {"properties": {"value": "<policies><inbound /><backend><forward-request /></backend>"
                                                 "<outbound /></policies>"}}, None),
]
NO_GET = ("products/p1/apis/a1", "products/p1/groups/g1")


def collection(path: str) -> str:
    return path.rsplit("/", 1)[0]


def etag(response: Any) -> str:
    value = response.headers.get("ETag")
    assert value is not None and value.startswith('"') and value.endswith('"'), response.headers
    return str(value)


@pytest.fixture(autouse=True)
def anyone_may_write(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)


@pytest.fixture
def strict(raw: RawArm, spec: SpecValidator) -> RawArm:
    """The raw client with the spec present (these tests are about it)."""
    return raw


def test_the_spec_lookup_finds_each_operations_answer_and_catches_broken_bodies(spec: SpecValidator) -> None:
    assert spec.response_definition("GET", f"{S}/apis/a/operations", 200) == "OperationCollection"
    assert spec.response_definition("GET", f"{S}/apis/a;rev=2/operations/o/policies/policy", 200) == "PolicyContract"
    assert spec.response_definition("PUT", f"{S}/products/p/apis/a", 201) == "ApiContract"
    assert spec.response_definition("POST", f"{S}/namedValues/n/listValue", 200) == "NamedValueSecretContract"
    assert spec.response_definition("DELETE", f"{S}/tags/t", 200) is None
    with pytest.raises(AssertionError):
        spec.response_definition("DELETE", f"{S}/apis/a", 200)  # Api_Delete answers 202 or 204 only
    good = {"id": "x", "name": "t", "type": "Microsoft.ApiManagement/service/tags", "properties": {"displayName": "T"}}
    assert spec.errors(good, "TagContract") == []
    assert spec.errors({**good, "properties": {}}, "TagContract")  # displayName is required
    assert spec.errors({**good, "properties": {"displayName": "x" * 161}}, "TagContract")
    assert spec.errors({"value": [{"properties": {"method": 5}}]}, "OperationCollection")


def test_every_kind_round_trips_and_each_answer_matches_the_spec(strict: RawArm) -> None:
    raw = strict
    etags: dict[str, str] = {}
    for path, body, patch in CASES:
        created = raw.request("PUT", f"{D}/{path}", body=body)
        # Every instance has its global policy from the start.
        assert created.status_code == (200 if path == "policies/policy" else 201), (path, created.text)
        again = raw.request("PUT", f"{D}/{path}", body=body)
        assert again.status_code == 200, (path, again.text)
        if path not in NO_GET:
            got = raw.request("GET", f"{D}/{path}")
            assert got.status_code == 200, (path, got.text)
            etags[path] = etag(got)
            assert got.json()["name"] == path.rsplit("/", 1)[1]
        head = raw.request("HEAD", f"{D}/{path}")
        assert head.status_code in (200, 204), path
        listed = raw.request("GET", f"{D}/{collection(path)}")
        assert listed.status_code == 200
        assert path.rsplit("/", 1)[1] in [item["name"] for item in listed.json()["value"]], path
        if patch is not None:
            patched = raw.request("PATCH", f"{D}/{path}", body={"properties": patch},
                                  headers={"If-Match": etags[path]})
            assert patched.status_code == 200, (path, patched.text)
            for key, value in patch.items():
                assert patched.json()["properties"][key] == value, path
            assert etag(patched) != etags[path]
            stale = raw.request("PATCH", f"{D}/{path}", body={"properties": patch}, headers={"If-Match": etags[path]})
            assert stale.status_code == 412 and stale.json()["error"]["code"] == "PreconditionFailed"
    for path, body, _ in reversed(CASES):
        headers = {} if body is None else {"If-Match": "*"}
        deleted = raw.request("DELETE", f"{D}/{path}", headers=headers)
        if path == "policies/policy":
            assert deleted.status_code == 200
            continue
        assert deleted.status_code == (204 if path == "apis/a1" else 200), (path, deleted.text)
        gone = raw.request("DELETE", f"{D}/{path}", headers=headers)
        assert gone.status_code == 204, path
        if path not in NO_GET:
            missing = raw.request("GET", f"{D}/{path}")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound", path


def test_secrets_never_come_back(strict: RawArm) -> None:
    raw = strict
    raw.request("PUT", f"{S}/namedValues/hush", body={"properties": {"displayName": "hush", "value": "TOPSECRET-1",
                                                                     "secret": True}})
    raw.request("PUT", f"{S}/loggers/l1", body={"properties": {
        "loggerType": "applicationInsights", "credentials": {"connectionString": "InstrumentationKey=TOPSECRET-2"}}})
    raw.request("PUT", f"{S}/subscriptions/s1", body={"properties": {
        "scope": "/apis", "displayName": "s", "primaryKey": "TOPSECRET-3", "secondaryKey": "TOPSECRET-4"}})
    for path in ("namedValues", "namedValues/hush", "loggers", "loggers/l1", "subscriptions", "subscriptions/s1"):
        answer = raw.request("GET", f"{S}/{path}")
        assert answer.status_code == 200
        assert "TOPSECRET" not in answer.text, path
    revealed = raw.request("POST", f"{S}/namedValues/hush/listValue")
    assert revealed.status_code == 200 and revealed.json() == {"value": "TOPSECRET-1"}
    keys = raw.request("POST", f"{S}/subscriptions/s1/listSecrets")
    assert keys.json() == {"primaryKey": "TOPSECRET-3", "secondaryKey": "TOPSECRET-4"}
    assert raw.request("POST", f"{S}/subscriptions/s1/regeneratePrimaryKey").status_code == 204
    assert raw.request("POST", f"{S}/subscriptions/s1/listSecrets").json()["primaryKey"] != "TOPSECRET-3"


def test_certificates_from_pfx_data_keep_data_and_password_to_themselves(strict: RawArm, tmp_path: Any) -> None:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backend.contoso.com")])
    import datetime as dt

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)).sign(key, hashes.SHA256()))
    pfx = pkcs12.serialize_key_and_certificates(
        b"c", key, cert, None, serialization.BestAvailableEncryption(b"pfx-password"))
    data = base64.b64encode(pfx).decode()
    created = strict.request("PUT", f"{S}/certificates/backend", body={"properties": {
        "data": data, "password": "pfx-password"}})
    assert created.status_code == 201, created.text
    props = created.json()["properties"]
    assert props["subject"] == "CN=backend.contoso.com"
    assert props["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert props["expirationDate"] == "2030-01-01T00:00:00Z"
    assert "pfx-password" not in created.text and data[:40] not in created.text
    wrong = strict.request("PUT", f"{S}/certificates/other", body={"properties": {"data": data, "password": "no"}})
    assert wrong.status_code == 400 and wrong.json()["error"]["details"][0]["target"] == "data"


def test_pages_follow_next_link_with_count(strict: RawArm, emu: ApimEmulator) -> None:
    raw = strict
    raw.request("PUT", f"{S}/apis/paged", body={"properties": {"displayName": "Paged", "path": "paged"}})
    for i in range(5):
        raw.request("PUT", f"{S}/apis/paged/operations/op{i}", body={"properties": {
            "displayName": f"op {i}", "method": "GET", "urlTemplate": f"/op{i}"}})
    emu.admin.set_page_size(2)
    first = raw.request("GET", f"{S}/apis/paged/operations").json()
    assert [o["name"] for o in first["value"]] == ["op0", "op1"] and first["count"] == 5
    assert parse_qs(urlsplit(first["nextLink"]).query)["$skip"] == ["2"]
    seen = [o["name"] for o in first["value"]]
    link = first.get("nextLink")
    while link:
        page = raw.request("GET", link, api_version=None).json()
        seen += [o["name"] for o in page["value"]]
        link = page.get("nextLink")
    assert seen == [f"op{i}" for i in range(5)]
    top = raw.request("GET", f"{S}/apis/paged/operations?api-version={API_VERSION}&$top=1&$skip=3",
                      api_version=None).json()
    assert [o["name"] for o in top["value"]] == ["op3"] and top["count"] == 5


# -- bad input -------------------------------------------------------------------------------------
def test_unknown_entities_and_parents_are_404(strict: RawArm) -> None:
    for path, message in (("apis/nope", "Api not found."), ("apis/nope/operations", "Api not found."),
                          ("apis/echo-api/operations/nope", "Operation not found."),
                          ("products/nope/apis", "Product not found."), ("namedValues/nope", "NamedValue not found."),
                          ("apis/echo-api;rev=9", "Api not found."),
                          ("policyFragments/nope", "PolicyFragment not found.")):
        answer = strict.request("GET", f"{S}/{path}")
        assert answer.status_code == 404, path
        assert answer.json()["error"] == {"code": "ResourceNotFound", "message": message, "details": None}
    assert strict.request("GET", f"{S}/gateways").status_code == 404  # not a kind the emulator serves
    assert strict.request("POST", f"{S}/apis/echo-api").status_code == 405


@pytest.mark.parametrize(("path", "parameter"), [
    ("apis/bad*name", "apiId"),
    ("tags/" + "t" * 81, "tagId"),
    ("namedValues/a<b", "namedValueId"),
    ("apis/echo-api/operations/" + quote("line\nbreak", safe=""), "operationId"),
    ("backends/" + quote("a/b", safe=""), "backendId"),
    ("policyFragments/-starts-with-dash", "id"),
    ("apis/echo-api/policies/other", "policyId"),
])
def test_bad_names_are_refused_naming_the_parameter(strict: RawArm, path: str, parameter: str) -> None:
    answer = strict.request("PUT", f"{S}/{path}", body={"properties": {"displayName": "x", "value": POLICY}})
    assert answer.status_code == 400, answer.text
    detail = answer.json()["error"]["details"][0]
    assert detail["target"] == parameter


def test_hostile_but_valid_names_are_stored_exactly(strict: RawArm) -> None:
    name = "x' OR '1'='1 -- ünïcødé"
    created = strict.request("PUT", f"{S}/tags/{quote(name, safe='')}", body={"properties": {"displayName": name}})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    listed = strict.request("GET", f"{S}/tags").json()
    assert name in [t["name"] for t in listed["value"]]
    assert strict.request("GET", f"{S}/tags/{quote(name, safe='')}").json()["properties"]["displayName"] == name


@pytest.mark.parametrize(("path", "body", "target"), [
    ("apis/x", {"properties": {"displayName": "X"}}, "path"),
    ("apis/x", {"properties": {"path": "x"}}, "displayName"),
    ("apis/x", {"properties": {"displayName": 5, "path": "x"}}, "displayName"),
    ("apis/x", {"properties": {"displayName": "X", "path": "x", "protocols": ["ftp"]}}, "protocols"),
    ("apis/x", {"properties": {"displayName": "X", "path": "echo"}}, "path"),  # echo-api has it
    ("apis/x", {"properties": {"displayName": "X", "path": "x", "serviceUrl": "not a url"}}, "serviceUrl"),
    ("apis/x", {"properties": {"displayName": "X", "path": "x", "apiVersionSetId": "/apiVersionSets/nope"}},
     "apiVersionSetId"),
    ("apis/echo-api/operations/o", {"properties": {"displayName": "o", "method": "GET"}}, "urlTemplate"),
    ("apis/echo-api/operations/o", {"properties": {"displayName": "o", "method": "GET", "urlTemplate": "/a/{id}"}},
     "templateParameters"),
    ("namedValues/n", {"properties": {"value": "v"}}, "displayName"),
    ("namedValues/n", {"properties": {"displayName": "has space", "value": "v"}}, "displayName"),
    ("namedValues/n", {"properties": {"displayName": "n", "value": "v" * 4097}}, "value"),
    ("namedValues/n", {"properties": {"displayName": "n"}}, "value"),
    ("namedValues/n", {"properties": {"displayName": "n", "keyVault": {"secretIdentifier": "http://kv/x"}}},
     "keyVault.secretIdentifier"),
    ("namedValues/n", {"properties": {"displayName": "orders-backend-url", "value": "dup"}}, "displayName"),
    ("backends/b", {"properties": {"url": "https://b"}}, "protocol"),
    ("loggers/l", {"properties": {"loggerType": "applicationInsights", "credentials": {"instrumentationKey":
                                                                                    "{{missing}}"}}}, "credentials"),
    ("diagnostics/applicationinsights", {"properties": {"loggerId": "/loggers/none"}}, "loggerId"),
    ("apiVersionSets/v", {"properties": {"displayName": "V", "versioningScheme": "Header"}}, "versionHeaderName"),
    ("products/p", {"properties": {"description": "no name"}}, "displayName"),
    ("subscriptions/s", {"properties": {"displayName": "S", "scope": "/products/nope"}}, "scope"),
    ("subscriptions/s", {"properties": {"displayName": "S", "scope": "/apis", "ownerId": "/users/nobody"}}, "ownerId"),
    ("policies/policy", {"properties": {"value": "<policies><inbound>"}}, "value"),
    ("policies/policy", {"properties": {"value": "<other />"}}, "value"),
    ("policies/policy", {"properties": {"value": "<!DOCTYPE x [<!ENTITY a \"b\">]><policies />"}}, "value"),
    ("policies/policy", {"properties": {"value": "<policies><inbound>{{no-such-value}}</inbound></policies>"}},
     "value"),
    ("policies/policy", {"properties": {"value": "<policies>\n  <inbound><include-fragment fragment-id=\"nope\" />"
                                                 "</inbound></policies>"}}, "include-fragment"),
    ("policies/policy", {"properties": {"value": POLICY, "format": "xml-link"}}, "format"),
    ("groups/g", {"properties": {"displayName": "G", "type": "system"}}, "type"),
    ("certificates/c", {"properties": {}}, "data"),
    ("tags/t", {"properties": {"displayName": "x" * 161}}, "displayName"),
    ("tags/t", {"nothing": "here"}, "properties"),
    ("tags/t", ["not", "an", "object"], "parameters"),
])
def test_invalid_bodies_are_refused_naming_the_field(strict: RawArm, emu: ApimEmulator, path: str, body: Any,
                                                     target: str) -> None:
    before = emu.admin.service(PROD)["configuration"]
    answer = strict.request("PUT", f"{S}/{path}", body=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "ValidationError"
    assert error["details"][0]["target"] == target, error
    assert emu.admin.service(PROD)["configuration"] == before  # nothing changed


def test_reference_errors_use_apims_wording(strict: RawArm) -> None:
    missing = strict.request("PUT", f"{S}/policies/policy", body={"properties": {
        "value": "<policies>\n  <inbound><include-fragment fragment-id=\"nope\" /></inbound></policies>"}})
    assert missing.json()["error"]["details"][0]["message"] == (
        "Error in element 'include-fragment' on line 2, column 12: Policy fragment with id 'nope' could not be found.")
    unknown = strict.request("PUT", f"{S}/policies/policy", body={"properties": {
        "value": "<policies><inbound>{{nope}}</inbound></policies>"}})
    assert unknown.json()["error"]["details"][0]["message"] == "Property 'nope' not found."
    bad_key = strict.request("PUT", f"{S}/loggers/l", body={"properties": {
        "loggerType": "applicationInsights", "credentials": {"instrumentationKey": "not-a-guid"}}})
    assert bad_key.json()["error"] == {"code": "ValidationError", "details": None, "message": (
        "Validation failed for logger-id 'l'. Exception Received 'Invalid instrumentation key for Application "
        "Insights Logger'")}


def test_links_to_unknown_entities_are_refused(strict: RawArm) -> None:
    for path, message in (("products/starter/apis/nope", "Api not found."),
                          ("products/starter/groups/nope", "Group not found."),
                          ("apis/echo-api/tags/nope", "Tag not found.")):
        answer = strict.request("PUT", f"{S}/{path}")
        assert answer.status_code == 404, path
        assert answer.json()["error"]["message"] == message


def test_if_match_rules(strict: RawArm) -> None:
    raw = strict
    created = raw.request("PUT", f"{S}/tags/t", body={"properties": {"displayName": "T"}})
    tag = etag(created)
    assert raw.request("PUT", f"{S}/tags/t", body={"properties": {"displayName": "U"}},
                       headers={"If-Match": '"AAAAAAAAAAE="'}).status_code == 412
    assert raw.request("PUT", f"{S}/tags/new", body={"properties": {"displayName": "N"}},
                       headers={"If-Match": "*"}).status_code == 412  # If-Match on something that does not exist
    no_header = raw.request("DELETE", f"{S}/tags/t")
    assert no_header.status_code == 400 and no_header.json()["error"]["details"][0]["target"] == "If-Match"
    assert raw.request("PATCH", f"{S}/tags/t", body={"properties": {"displayName": "V"}}).status_code == 400
    assert raw.request("DELETE", f"{S}/tags/t", headers={"If-Match": '"AAAAAAAAAAE="'}).status_code == 412
    assert raw.request("GET", f"{S}/tags/t").json()["properties"]["displayName"] == "T"
    assert raw.request("DELETE", f"{S}/tags/t", headers={"If-Match": tag}).status_code == 200


def test_oversized_and_malformed_bodies(strict: RawArm) -> None:
    big = json.dumps({"properties": {"displayName": "x", "description": "y" * (5 * 1024 * 1024)}}).encode()
    answer = strict.request("PUT", f"{S}/tags/t", data=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["details"][0]["target"] == "parameters"
    for data in (b"{", b"", b"[1,2]", b"\xff\xfe"):
        bad = strict.request("PUT", f"{S}/tags/t", data=data, headers={"Content-Type": "application/json"})
        assert bad.status_code == 400, data


def test_policy_size_follows_the_tier(strict: RawArm, emu: ApimEmulator) -> None:
    filler = "<!--" + "x" * (20 * 1024) + "-->"
    big_policy = f"<policies>{filler}<inbound /></policies>"
    assert strict.request("PUT", f"{S}/policies/policy", body={"properties": {"value": big_policy}}).status_code == 200
    consumption = service_path(CONSUMPTION)
    refused = strict.request("PUT", f"{consumption}/policies/policy", body={"properties": {"value": big_policy}})
    assert refused.status_code == 400 and "16384 bytes" in refused.json()["error"]["details"][0]["message"]


def test_deleting_what_is_still_referenced_is_refused(strict: RawArm) -> None:
    raw = strict
    raw.request("PUT", f"{S}/namedValues/env", body={"properties": {"displayName": "env", "value": "prod"}})
    raw.request("PUT", f"{S}/apis/echo-api/policies/policy", body={"properties": {
        "value": "<policies><inbound><set-variable name=\"e\" value=\"{{env}}\" /></inbound></policies>"}})
    refused = raw.request("DELETE", f"{S}/namedValues/env", headers={"If-Match": "*"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "The Named Value 'env' is used by the following entities:\r\n/apis/echo-api/policies/policy\r\n")
    raw.request("DELETE", f"{S}/apis/echo-api/policies/policy", headers={"If-Match": "*"})
    assert raw.request("DELETE", f"{S}/namedValues/env", headers={"If-Match": "*"}).status_code == 200
    raw.request("PUT", f"{S}/subscriptions/s", body={"properties": {"displayName": "s", "scope": "/products/starter"}})
    kept = raw.request("DELETE", f"{S}/products/starter", headers={"If-Match": "*"})
    assert kept.status_code == 400
    assert raw.request("DELETE", f"{S}/products/starter?api-version={API_VERSION}&deleteSubscriptions=true",
                       api_version=None, headers={"If-Match": "*"}).status_code == 200
    assert raw.request("GET", f"{S}/subscriptions/s").status_code == 404


def test_deleting_an_api_removes_its_links_and_revisions(strict: RawArm) -> None:
    raw = strict
    raw.request("PUT", f"{S}/apis/echo-api;rev=2", body={"properties": {"path": "echo"}})
    assert raw.request("GET", f"{S}/apis/echo-api;rev=2").status_code == 200
    assert "echo-api" in [a["name"] for a in raw.request("GET", f"{S}/products/starter/apis").json()["value"]]
    assert raw.request("DELETE", f"{S}/apis/echo-api", headers={"If-Match": "*"}).status_code == 204
    assert raw.request("GET", f"{S}/apis/echo-api;rev=2").status_code == 404
    assert raw.request("GET", f"{S}/products/starter/apis").json()["value"] == []


def test_portal_settings_answers_match_the_spec_definitions(strict: RawArm) -> None:
    for name in ("signin", "signup", "delegation"):
        got = strict.request("GET", f"{S}/portalsettings/{name}")
        assert got.status_code == 200 and got.json()["name"] == name
        assert got.json()["type"] == "Microsoft.ApiManagement/service/portalsettings"
    put = strict.request("PUT", f"{S}/portalsettings/signin", body={"properties": {"enabled": True}})
    assert put.status_code == 200  # the settings always exist: never 201
    patched = strict.request("PATCH", f"{S}/portalsettings/signin", body={"properties": {"enabled": False}},
                             headers={"If-Match": "*"})
    assert patched.status_code == 204 and patched.content == b""
    assert strict.request("GET", f"{S}/portalsettings").json()["count"] == 3
    assert strict.request("POST", f"{S}/portalsettings/delegation/listSecrets").status_code == 200
    assert strict.request("POST", f"{S}/portalsettings/signin/listSecrets").status_code == 404
    assert strict.request("GET", f"{S}/portalsettings/other").status_code == 400


def test_revisions_stay_together_when_paths_change(strict: RawArm) -> None:
    raw = strict
    raw.request("PUT", f"{S}/apis/echo-api;rev=2", body={"properties": {"path": "echo"}})
    moved = raw.request("PATCH", f"{S}/apis/echo-api", body={"properties": {"path": "echo-moved"}},
                        headers={"If-Match": "*"})
    assert moved.status_code == 200 and moved.json()["properties"]["path"] == "echo-moved"
    revisions = raw.request("GET", f"{S}/apis/echo-api/revisions").json()
    assert [(r["apiRevision"], r["isCurrent"]) for r in revisions["value"]] == [("1", True), ("2", False)]
    assert revisions["value"][1]["privateUrl"] == "/echo;rev=2"
    assert raw.request("DELETE", f"{S}/apis/echo-api", headers={"If-Match": "*"}).status_code == 204
    assert raw.request("GET", f"{S}/apis/echo-api;rev=2").status_code == 404


def test_the_kind_table_serves_exactly_what_the_spec_defines(spec: SpecValidator) -> None:
    """Each kind's methods against the spec's operations for its paths, both ways (portal settings and
    reports have no path file in ../shared; virtual lists and actions are checked by their own tests)."""
    from emulator.apim.kinds import KINDS

    problems = []
    for kind in KINDS.values():
        if kind.key in ("portalsettings", "reports"):
            continue
        names = [f"n{i}" for i in range(len(kind.parts))]
        if kind.singleton:
            names[-1] = kind.singleton
        entity = S + "".join(f"/{KINDS['/'.join(kind.parts[: i + 1])].segment}/{n}" for i, n in enumerate(names))
        collection = entity.rsplit("/", 1)[0]
        wanted = {("GET", collection)} if "list" in kind.ops else set()
        wanted |= {(op.upper(), entity) for op in kind.ops - {"list"}}
        for method, path in sorted(wanted):
            if spec.operation(method, path) is None:
                problems.append(f"{kind.key}: the emulator serves {method} {path}, the spec does not define it")
        if kind.virtual:
            continue
        for method in ("GET", "HEAD", "PUT", "PATCH", "DELETE"):
            if spec.operation(method, entity) is not None and (method, entity) not in wanted:
                problems.append(f"{kind.key}: the spec defines {method} on the entity, the emulator does not serve it")
    assert problems == []
