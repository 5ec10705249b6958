"""The admin API (/_front/): hostile input answers 4xx with a JSON error, never 5xx, and changes nothing."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
import requests
from front_support import ACCOUNT, key_client, unique_container

from emulator.blobfront import BlobFront


@pytest.fixture
def http(front: BlobFront) -> requests.Session:
    session = requests.Session()
    session.verify = str(front.tls.ca_bundle)
    session.trust_env = False
    return session


@pytest.fixture
def container(front: BlobFront) -> str:
    service = key_client(front, ACCOUNT)
    name = unique_container()
    service.create_container(name).upload_blob("b.bin", b"1")
    return name


def _send(http: requests.Session, front: BlobFront, method: str, path: str, body: Any = None,
          **kwargs: Any) -> requests.Response:
    if isinstance(body, str | bytes) or hasattr(body, "__next__"):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    return http.request(method, f"{front.url}/_front{path}", timeout=10, **kwargs)


def _bad_requests(container: str) -> list[tuple[str, str, Any, int]]:
    c = f"/containers/{ACCOUNT}/{container}"
    b = f"/blobs/{ACCOUNT}/{container}"
    return [
        ("PUT", f"{c}/policy", "{not json", 400),
        ("PUT", f"{c}/policy", "", 400),
        ("PUT", f"{c}/policy", [1, 2], 400),
        ("PUT", f"{c}/policy", {"retentionDays": -1}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": 0}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": 146_001}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": 1.5}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": True}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": "7"}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": 7, "locked": "yes"}, 400),
        ("PUT", f"{c}/policy", {"retentionDays": 7, "extra": 1}, 400),
        ("PUT", f"/containers/{ACCOUNT}/Upper-Case/policy", {"retentionDays": 1}, 400),
        ("PUT", f"/containers/{ACCOUNT}/a--b/policy", {"retentionDays": 1}, 400),
        ("PUT", f"/containers/{ACCOUNT}/ab/policy", {"retentionDays": 1}, 400),
        ("PUT", "/containers/NOT_AN_ACCOUNT/abc/policy", {"retentionDays": 1}, 400),
        ("PUT", f"/containers/{ACCOUNT}/{unique_container('nope')}/policy", {"retentionDays": 1}, 404),
        ("PUT", "/containers/nosuchaccount/abc/policy", {"retentionDays": 1}, 404),
        ("PUT", f"/accounts/{ACCOUNT}/policy", {"retentionDays": 0}, 400),
        ("PUT", "/accounts/nosuchaccount/policy", {"retentionDays": 1}, 404),
        ("PUT", f"{c}/legal-hold", {"tags": []}, 400),
        ("PUT", f"{c}/legal-hold", {"tags": ["ab"]}, 400),
        ("PUT", f"{c}/legal-hold", {"tags": ["has space"]}, 400),
        ("PUT", f"{c}/legal-hold", {"tags": ["x" * 24]}, 400),
        ("PUT", f"{c}/legal-hold", {"tags": [f"tag{i:02d}" for i in range(11)]}, 400),
        ("PUT", f"{c}/legal-hold", {"tags": "case1"}, 400),
        ("PUT", f"{b}/policy", {"until": "2030-01-01T00:00:00Z"}, 400),  # no ?blob=
        ("PUT", f"{b}/policy?blob=b.bin&blob=c", {"until": "2030-01-01T00:00:00Z"}, 400),
        ("PUT", f"{b}/policy?blob=b.bin", {"until": "2030-01-01T00:00:00"}, 400),  # no time zone
        ("PUT", f"{b}/policy?blob=b.bin", {"until": "tomorrow"}, 400),
        ("PUT", f"{b}/policy?blob=b.bin", {"until": 1893456000}, 400),
        ("PUT", f"{b}/policy?blob=b.bin", {"until": "2030-01-01T00:00:00Z", "mode": "Mutable"}, 400),
        ("PUT", f"{b}/policy?blob=missing.bin", {"until": "2030-01-01T00:00:00Z"}, 404),
        ("PUT", f"{b}/policy?blob=%00bad", {"until": "2030-01-01T00:00:00Z"}, 400),
        ("PUT", f"{b}/legal-hold?blob=b.bin", {"legalHold": "true"}, 400),
        ("PUT", "/clock", {"offsetSeconds": "NaN"}, 400),
        ("PUT", "/clock", '{"offsetSeconds": NaN}', 400),
        ("PUT", "/clock", '{"offsetSeconds": Infinity}', 400),
        ("PUT", "/clock", {"offsetSeconds": 1e300}, 400),
        ("POST", "/clock/advance", {"seconds": None}, 400),
        ("PUT", "/roles", '{"x": [{"role": "Reader", "scope": "/"}], "y": 5}', 400),
        ("PUT", "/roles", "[" * 100_000 + "]" * 100_000, 400),
        ("GET", "/nothing-here", None, 404),
        ("GET", "/containers", None, 404),
        ("DELETE", "/health", None, 405),
        ("GET", "/reset", None, 405),
        ("POST", "/roles", None, 405),
    ]


def test_hostile_input_answers_4xx_and_changes_nothing(front: BlobFront, http: requests.Session,
                                                       container: str) -> None:
    before = front.admin.state()
    for method, path, body, status in _bad_requests(container):
        response = _send(http, front, method, path, body)
        assert response.status_code == status, (method, path, body, response.text)
        error = response.json()["error"]
        assert error["code"] and error["message"], (method, path)
    after = front.admin.state()
    assert {k: v for k, v in after.items() if k != "clock"} == {k: v for k, v in before.items() if k != "clock"}
    assert after["clock"]["offsetSeconds"] == 0
    assert front.admin.health() == {"status": "ok"}


def test_oversized_body_is_refused(front: BlobFront, http: requests.Session) -> None:
    response = _send(http, front, "PUT", "/roles", b"{" + b" " * (300 * 1024) + b"}",
                     headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "BodyTooLarge"


def test_chunked_admin_body_is_refused(front: BlobFront, http: requests.Session) -> None:
    response = _send(http, front, "PUT", "/clock", (part for part in [b'{"offsetSeconds":', b" 5}"]))
    assert response.status_code == 411
    assert front.admin.clock()["offsetSeconds"] == 0


def test_garbage_on_the_wire_does_not_stop_the_front(front: BlobFront) -> None:
    context = ssl.create_default_context(cafile=str(front.tls.ca_bundle))
    for garbage in (b"\x00\x01\x02 nonsense\r\n\r\n", b"GET /_front/health HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"PUT /devstoreaccount1/c/b HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", front.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(garbage)
            tls.settimeout(5)
            try:
                answer = tls.recv(200)
            except (TimeoutError, ssl.SSLError, ConnectionError):
                answer = b""
            assert not answer.startswith(b"HTTP/1.1 5") and not answer.startswith(b"HTTP/1.0 5"), answer
    # A TLS-less client does not stop it either.
    with socket.create_connection(("127.0.0.1", front.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert front.admin.health() == {"status": "ok"}


def test_clock_state_reset_and_request_log(front: BlobFront, container: str) -> None:
    assert front.admin.set_clock_offset(3600)["offsetSeconds"] == 3600
    assert front.admin.advance_clock(-1800)["offsetSeconds"] == 1800
    front.admin.set_container_policy(ACCOUNT, container, 3, locked=True)
    front.admin.set_container_legal_hold(ACCOUNT, container, ["case1", "case2"])
    front.admin.set_blob_policy(ACCOUNT, container, "b.bin", "2031-01-01T00:00:00+00:00", mode="Locked")
    state = front.admin.state()
    assert state["clock"]["offsetSeconds"] == 1800
    assert state["containers"] == [{"account": ACCOUNT, "container": container,
                                    "policy": {"retention_days": 3, "locked": True,
                                               "allow_protected_append_writes": False},
                                    "legalHoldTags": ["case1", "case2"]}]
    assert state["blobs"] == [{"account": ACCOUNT, "container": container, "blob": "b.bin",
                               "until": "2031-01-01T00:00:00Z", "mode": "Locked", "legalHold": False}]
    key_client(front, ACCOUNT).get_blob_client(container, "b.bin").download_blob().readall()
    gets = front.admin.requests(method="GET", path_contains=container)
    assert [e["operation"] for e in gets] == ["GetBlob"]
    assert front.admin.requests(operation="GetBlob", decision="refused-rbac") == []
    front.admin.reset()
    state = front.admin.state()
    assert (state["containers"], state["blobs"], state["roles"], state["clock"]["offsetSeconds"]) == ([], [], None, 0)
    assert front.admin.requests() == []
    assert {r["roleName"] for r in front.admin.builtin_roles()} >= {
        "Storage Blob Data Owner", "Storage Blob Data Contributor", "Storage Blob Data Reader"}
