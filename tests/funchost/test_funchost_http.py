"""HTTP triggers of the in-process host: routing, keys, limits, request/response mapping, errors."""

from __future__ import annotations

import base64
import http.client
import json
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from funchost_support import SAMPLE_APP, SampleEnv

from emulator.funchost import FunctionsHost

FUNCTION_KEY = "function-key-for-tests"
MASTER_KEY = "master-key-for-tests"


@pytest.fixture
def host(sample_env: SampleEnv) -> Iterator[FunctionsHost]:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, run_queues=False, function_keys={"default": FUNCTION_KEY},
                       master_key=MASTER_KEY, max_request_body=1024) as running:
        yield running


def url(host: FunctionsHost, path: str) -> str:
    assert host.http_url is not None
    return f"{host.http_url}{path}"


def test_route_params_query_headers_and_body(host: FunctionsHost) -> None:
    response = requests.post(url(host, "/api/items/42/bolt?color=red"), data=b"payload",
                             headers={"x-functions-key": FUNCTION_KEY, "X-Test": "yes"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Sample"] == "items"
    body = response.json()
    assert body["method"] == "POST"
    assert body["route_params"] == {"id": "42", "name": "bolt"}
    assert body["params"] == {"color": "red"}
    assert (body["body"], body["x_test"]) == ("payload", "yes")
    assert body["url"].endswith("/api/items/42/bolt?color=red")
    optional = requests.get(url(host, f"/api/items/7?code={FUNCTION_KEY}"), timeout=10)
    assert optional.status_code == 200 and optional.json()["route_params"] == {"id": "7"}


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"x-functions-key": "wrong"}, "", 401),
        ({}, "?code=wrong", 401),
        ({"x-functions-key": FUNCTION_KEY}, "", 200),
        ({}, f"?code={FUNCTION_KEY}", 200),
        ({"x-functions-key": MASTER_KEY}, "", 200),
    ],
)
def test_function_keys(host: FunctionsHost, headers: dict[str, str], query: str, status: int) -> None:
    assert requests.get(url(host, f"/api/items/1{query}"), headers=headers, timeout=10).status_code == status


def test_admin_level_needs_the_master_key(host: FunctionsHost) -> None:
    headers = {"x-functions-key": FUNCTION_KEY}
    assert requests.get(url(host, "/api/admin-only"), headers=headers, timeout=10).status_code == 401
    response = requests.get(url(host, f"/api/admin-only?code={MASTER_KEY}"), timeout=10)
    assert (response.status_code, response.text) == (200, "admin ok")


def test_anonymous_async_function(host: FunctionsHost) -> None:
    response = requests.get(url(host, "/api/hello?name=Ada"), timeout=10)
    assert (response.status_code, response.text) == (201, "hello Ada")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_context_parameter(host: FunctionsHost) -> None:
    body = requests.get(url(host, "/api/context"), timeout=10).json()
    assert body["function"] == "with_context"
    assert body["id"] == host.invocations[-1].invocation_id


def test_unknown_route_and_wrong_method(host: FunctionsHost) -> None:
    assert requests.get(url(host, "/api/nope"), timeout=10).status_code == 404
    assert requests.get(url(host, "/elsewhere/hello"), timeout=10).status_code == 404
    assert requests.get(url(host, "/api/items/not-a-number"), timeout=10).status_code == 404
    response = requests.delete(url(host, f"/api/items/1?code={FUNCTION_KEY}"), timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_request_body_limit(host: FunctionsHost) -> None:
    big = requests.post(url(host, "/api/items/1"), data=b"x" * 2048, headers={"x-functions-key": FUNCTION_KEY},
                        timeout=10)
    assert big.status_code == 413
    chunked = requests.post(url(host, "/api/items/1"), data=iter([b"x" * 600, b"y" * 600]),
                            headers={"x-functions-key": FUNCTION_KEY}, timeout=10)
    assert chunked.status_code == 413
    small = requests.post(url(host, "/api/items/1"), data=iter([b"ab", b"cd"]),
                          headers={"x-functions-key": FUNCTION_KEY}, timeout=10)
    assert small.status_code == 200 and small.json()["body"] == "abcd"
    # The limit is checked from Content-Length before the body is read.
    parts = urlsplit(url(host, "/api/items/1"))
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    connection.putrequest("POST", parts.path)
    connection.putheader("x-functions-key", FUNCTION_KEY)
    connection.putheader("Content-Length", str(10 * 1024 * 1024))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()


def test_unhandled_exception_is_500_without_details(host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        response = requests.get(url(host, "/api/boom"), timeout=10)
    assert response.status_code == 500
    assert response.content == b""
    assert "secret-detail-do-not-leak" not in response.text and "Traceback" not in response.text
    assert "secret-detail-do-not-leak" in caplog.text  # logged instead
    record = host.invocations[-1]
    assert (record.function, record.outcome, record.details["status"]) == ("boom", "failure", 500)


def test_http_function_with_queue_output(host: FunctionsHost, sample_env: SampleEnv) -> None:
    response = requests.post(url(host, "/api/enqueue"), data=b"first", timeout=10)
    assert response.status_code == 202
    raw = sample_env.raw_messages(sample_env.out_queue_name)
    assert [base64.b64decode(m).decode() for m in raw] == ["first", "second"]


def test_admin_api_fires_a_timer(host: FunctionsHost, sample_env: SampleEnv) -> None:
    endpoint = url(host, "/admin/functions/sample_timer")
    assert requests.post(endpoint, json={"input": ""}, timeout=10).status_code == 401
    response = requests.post(endpoint, json={"input": ""}, headers={"x-functions-key": MASTER_KEY}, timeout=10)
    assert response.status_code == 202
    host.wait_for(lambda r: r.function == "sample_timer", timeout=5)
    status = requests.get(url(host, "/admin/host/status"), headers={"x-functions-key": MASTER_KEY}, timeout=10)
    assert json.loads(status.text)["state"] == "Running"


def test_generated_keys_when_none_are_given(sample_env: SampleEnv) -> None:
    with FunctionsHost(SAMPLE_APP, sample_env.settings, run_queues=False) as running:
        (key,) = running.function_keys.values()
        assert len(key) >= 32 and running.master_key != key
        assert requests.get(f"{running.http_url}/api/items/1", timeout=10).status_code == 401
        assert requests.get(f"{running.http_url}/api/items/1?code={key}", timeout=10).status_code == 200


def test_disabled_function_is_not_routed(sample_env: SampleEnv) -> None:
    settings = {**sample_env.settings, "AzureWebJobs.hello.Disabled": "1"}
    with FunctionsHost(SAMPLE_APP, settings, run_queues=False) as running:
        assert requests.get(f"{running.http_url}/api/hello", timeout=10).status_code == 404


def test_keys_are_not_logged(host: FunctionsHost, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="emulator.funchost"):
        assert requests.get(url(host, f"/api/items/3?code={FUNCTION_KEY}&x=1"), timeout=10).status_code == 200
    assert "/api/items/3?code=***&x=1" in caplog.text
    assert FUNCTION_KEY not in caplog.text
