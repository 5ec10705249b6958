"""Emulator bodies against ../shared/apim-spec, and LRO traffic against the real recordings."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from emu_support import (
    API_VERSION,
    CONSUMPTION,
    DR,
    PROD,
    PROD_RG,
    SPEC_DIR,
    SUB,
    RawArm,
    SpecValidator,
    key_body,
    make_token,
    service_path,
    unique,
)

from emulator.apim import ApimEmulator

RECORDINGS = SPEC_DIR / "recordings"
# Headers that depend on the transport or the real front door, not on the API contract.
TRANSPORT_HEADERS = {"date", "server", "content-encoding", "transfer-encoding", "vary", "connection", "keep-alive"}


def _recording(name: str) -> dict[str, Any]:
    path = RECORDINGS / name
    if not path.exists():
        pytest.skip(f"../shared/apim-spec not found: {path.resolve()} is missing")
    return dict(json.loads(path.read_text()))


def test_validator_accepts_real_bodies_and_rejects_broken_ones(spec: SpecValidator) -> None:
    # The validator itself: real recorded APIM bodies pass, and it does catch contract breaks.
    real = _recording("recording_apimanagementservice_get_test.json")["Entries"][0]["ResponseBody"]
    spec.validate(real, "ApiManagementServiceResource")
    assert spec.errors(real | {"sku": {"name": "Gold", "capacity": 1}}, "ApiManagementServiceResource")
    assert spec.errors({k: v for k, v in real.items() if k != "location"}, "ApiManagementServiceResource")
    assert spec.errors(
        real | {"properties": {**real["properties"], "platformVersion": "v9"}}, "ApiManagementServiceResource"
    )
    assert spec.errors({"value": "nope"}, "ApiManagementServiceListResult")
    assert spec.errors({"error": {"code": 5}}, "ErrorResponse")


def test_service_and_list_bodies_match_the_spec(raw: RawArm, spec: SpecValidator, emu: ApimEmulator) -> None:
    for name in (s["name"] for s in emu.admin.services()):
        response = raw.request("GET", service_path(name))
        assert response.status_code == 200
        spec.validate(response.json(), "ApiManagementServiceResource")
        assert response.headers["ETag"] == f'"{response.json()["etag"]}"'
    emu.admin.set_page_size(4)
    page = raw.request("GET", f"/subscriptions/{SUB}/providers/Microsoft.ApiManagement/service")
    spec.validate(page.json(), "ApiManagementServiceListResult")
    assert len(page.json()["value"]) == 4 and page.json()["nextLink"].startswith(emu.arm_url)
    rest = raw.request("GET", page.json()["nextLink"], api_version=None)
    assert len(rest.json()["value"]) == 3 and "nextLink" not in rest.json()
    by_rg = raw.request(
        "GET", f"/subscriptions/{SUB}/resourceGroups/{PROD_RG}/providers/Microsoft.ApiManagement/service"
    )
    spec.validate(by_rg.json(), "ApiManagementServiceListResult")
    assert {s["tags"].get("environment") for s in by_rg.json()["value"]} >= {"prod", "dev"}


def test_every_error_body_matches_the_spec(raw: RawArm, spec: SpecValidator, emu: ApimEmulator) -> None:
    # One of each error the emulator produces; RawArm.check validates each against ErrorResponse.
    svc = service_path(PROD)
    emu.admin.set_op_duration(600, service=DR)
    running = raw.start("backup", DR, key_body(unique()))
    answers = [
        raw.request("GET", svc, token=""),  # 401 AuthenticationFailed
        raw.request("GET", svc, token=make_token(lifetime=-600)),  # 401 ExpiredAuthenticationToken
        raw.request("GET", svc, token=make_token(aud="https://storage.azure.com")),  # 401 audience
        raw.request("GET", svc, api_version="2019-01-01"),  # 400 NoRegisteredProviderFound
        raw.request("GET", svc, api_version=None),  # 400 MissingApiVersionParameter
        raw.request("GET", service_path("nope-not-here")),  # 404 ResourceNotFound
        raw.request("GET", service_path(PROD, rg="rg-missing")),  # 404 ResourceGroupNotFound
        raw.request("GET", svc.replace(SUB, "00000000-0000-0000-0000-000000000001")),  # 404 SubscriptionNotFound
        raw.request("GET", service_path("1bad_name!")),  # 400 InvalidResourceName
        raw.start("backup", CONSUMPTION, key_body(unique())),  # 400 MethodNotAllowedInPricingTier
        raw.start("backup", PROD, {"storageAccount": "apimdrbackups"}),  # 400 InvalidParameters
        raw.start("backup", DR, key_body(unique())),  # 409 ServiceLocked
        raw.request("GET", f"{svc}/operationresults/bm9wZQ=="),  # 404 unknown operation
    ]
    emu.admin.set_arm_roles({})
    answers.append(raw.request("GET", svc))  # 403 AuthorizationFailed
    emu.admin.set_arm_roles(None)
    emu.admin.throttle(retry_after=1)
    answers.append(raw.request("GET", svc))  # 429 SubscriptionRequestsThrottled
    emu.admin.set_fault("http", status=503)
    answers.append(raw.request("GET", svc))  # 503 injected
    failing = raw.run("restore", PROD, key_body(unique("missing")))  # 400 RestoreFailed (async)
    answers.append(failing)

    codes = [r.json()["error"]["code"] for r in answers]
    assert codes == [
        "AuthenticationFailed",
        "ExpiredAuthenticationToken",
        "InvalidAuthenticationTokenAudience",
        "NoRegisteredProviderFound",
        "MissingApiVersionParameter",
        "ResourceNotFound",
        "ResourceGroupNotFound",
        "SubscriptionNotFound",
        "InvalidResourceName",
        "MethodNotAllowedInPricingTier",
        "InvalidParameters",
        "ServiceLocked",
        "ResourceNotFound",
        "AuthorizationFailed",
        "SubscriptionRequestsThrottled",
        "ServiceUnavailable",
        "RestoreFailed",
    ]
    assert running.status_code == 202
    for response in answers:
        spec.validate(response.json(), "ErrorResponse")
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.json()["error"]["code"] != "MissingSubscriptionRegistration"
    # APIM's own errors carry details/innerError null (apim-arm.md §1.6).
    locked = answers[11].json()["error"]
    assert locked == {
        "code": "ServiceLocked",
        "message": f"The API Service {DR} is transitioning at this time. Please try the request again later.",
        "details": None,
        "innerError": None,
    }


def test_lro_traffic_matches_the_recordings(raw: RawArm, spec: SpecValidator, emu: ApimEmulator) -> None:
    recorded = _recording("recording_apimanagementservice_create_test.json")["Entries"]
    recorded_polls = [e for e in recorded if "/operationresults/" in e["RequestUri"]]
    recorded_202 = next(e for e in recorded_polls if e["StatusCode"] == 202)
    recorded_final = recorded_polls[-1]
    assert [e["StatusCode"] for e in recorded_polls] == [202] * (len(recorded_polls) - 1) + [200]

    emu.admin.set_op_duration(2.5, service=PROD)
    started = raw.start("backup", PROD, key_body(unique()))
    polls = []
    location = started.headers["Location"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = raw.poll(location)
        polls.append(response)
        if response.status_code != 202:
            break
        location = response.headers["Location"]
        time.sleep(int(response.headers["Retry-After"]))

    # Status sequence: 202 on the POST, 202 ... 202 while running, then 200 (like the recording).
    assert started.status_code == 202
    statuses = [p.status_code for p in polls]
    assert len(statuses) >= 2 and statuses[:-1] == [202] * (len(statuses) - 1) and statuses[-1] == 200
    for response in [started, *polls[:-1]]:
        assert response.content == b"" and response.headers["Content-Length"] == "0"
        loc = urlsplit(response.headers["Location"])
        assert loc.scheme == "https" and f"{loc.scheme}://{loc.netloc}" == emu.arm_url
        assert "/operationresults/" in loc.path and parse_qs(loc.query)["api-version"] == [API_VERSION]
        assert response.headers["Retry-After"].isdigit() and int(response.headers["Retry-After"]) >= 1
        assert "Azure-AsyncOperation" not in response.headers
    # The Location stays the same across polls, as in the recording.
    assert {p.headers["Location"] for p in polls[:-1]} == {started.headers["Location"]}
    # Every header the real 202 poll carried (minus transport ones) is present.
    wanted = {h.lower() for h in recorded_202["ResponseHeaders"]} - TRANSPORT_HEADERS
    assert wanted <= {h.lower() for h in polls[0].headers}
    # Final 200: the full resource with the recording's top-level keys, and no Location.
    final = polls[-1]
    assert set(final.json()) == set(recorded_final["ResponseBody"])
    assert set(final.json()["properties"]) >= set(recorded_final["ResponseBody"]["properties"])
    assert "Location" not in final.headers
    spec.validate(final.json(), "ApiManagementServiceResource")
    # The operation id has APIM's form: base64("{region}:{name}_Act_{8 hex}").
    op_id = urlsplit(started.headers["Location"]).path.rsplit("/", 1)[1]
    region, _, rest = base64.b64decode(op_id).decode().partition(":")
    assert region == "westeurope" and rest.startswith(f"{PROD}_Act_") and len(rest.rsplit("_", 1)[1]) == 8


def test_results_are_idempotent(raw: RawArm) -> None:
    done = raw.run("backup", PROD, key_body(unique()))
    again = raw.poll(done.url)
    assert done.status_code == again.status_code == 200
    assert done.json() == again.json()
    failed = raw.run("restore", DR, key_body(unique("missing")))
    assert failed.status_code == 400
    assert raw.poll(failed.url).json() == failed.json()
