"""Concurrency guarantees of the engine's fine-grained locking (per service, per operation).

- Concurrent POSTs on one service: exactly one 202, the others 409 ServiceLocked, one operation.
- Concurrent POSTs on different services do not wait for each other's storage reads.
- An operation is finished once, however many threads find it due; a request for its service that
  arrives while it is being finished waits for the outcome instead of answering 202.
- Storage I/O runs outside the service lock; a reset waits for an operation being finished.
- List pages come from the stored ARM bodies and follow every change.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.mgmt.apimanagement import ApiManagementClient
from emu_support import ACCOUNT, ACCOUNT_KEY, DR, PROD, PROD_RG, SEED_PATH, SUB, RawArm, key_body, service_path, unique

from emulator.apim import ApimEmulator
from emulator.apim.operations import Engine
from emulator.apim.params import BackupRestoreParameters
from emulator.apim.state import Store

BACKUP_CAPABLE = ["apim-contoso-prod", "apim-contoso-dr", "apim-contoso-premium", "apim-contoso-dev"]


def _post_all(raw: RawArm, names: list[str]) -> list[requests.Response]:
    """POST a backup for each name at the same moment, each on its own connection."""
    barrier = threading.Barrier(len(names))

    def post(name: str) -> requests.Response:
        session = requests.Session()
        session.verify = str(raw.emu.ca_bundle)
        session.trust_env = False
        barrier.wait()
        return session.post(
            raw.url(f"{service_path(name)}/backup"),
            json=key_body(unique()),
            headers={"Authorization": f"Bearer {raw.token}"},
            timeout=30,
        )

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(post, names))


def test_concurrent_posts_on_one_service_give_one_202(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.set_op_duration(60, service=PROD)
    answers = _post_all(raw, [PROD] * 8)
    assert sorted(a.status_code for a in answers) == [202] + [409] * 7
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"ServiceLocked"}
    (op,) = emu.admin.operations(service=PROD)
    accepted = next(a for a in answers if a.status_code == 202)
    assert accepted.headers["Location"].split("?")[0].endswith(f"/operationresults/{op['id']}")
    assert emu.admin.service(PROD)["activeOperation"] == op["id"]


def test_concurrent_posts_on_different_services_all_start(emu: ApimEmulator, raw: RawArm) -> None:
    answers = _post_all(raw, BACKUP_CAPABLE)
    assert [a.status_code for a in answers] == [202] * len(BACKUP_CAPABLE)
    emu.admin.advance_clock(60)  # finishes every due operation before answering
    ops = emu.admin.operations()
    assert sorted(o["service"] for o in ops) == sorted(BACKUP_CAPABLE)
    assert {o["status"] for o in ops} == {"Succeeded"}


def test_list_pages_follow_changes(emu: ApimEmulator, client: ApiManagementClient, raw: RawArm) -> None:
    emu.admin.set_page_size(2)
    before = {s.name: s for s in client.api_management_service.list()}
    assert before[PROD].provisioning_state == "Succeeded"
    emu.admin.update_service(DR, tags={"changed": "yes"})
    emu.admin.set_op_duration(60, service=PROD)
    assert raw.start("backup", PROD, key_body(unique())).status_code == 202
    after = {s.name: s for s in client.api_management_service.list()}
    assert list(after) == list(before)  # same order
    assert after[DR].tags == {"changed": "yes"} and after[DR].etag != before[DR].etag
    assert after[PROD].provisioning_state == "Updating"
    in_rg = [s.name for s in client.api_management_service.list_by_resource_group(PROD_RG)]
    assert in_rg == sorted(s["name"] for s in emu.admin.services() if s["resourceGroup"] == PROD_RG)
    # A page beyond the end is empty, without nextLink.
    beyond = raw.request(
        "GET",
        f"/subscriptions/{SUB}/providers/Microsoft.ApiManagement/service?api-version=2024-05-01&$skiptoken=99",
        api_version=None,
    )
    assert beyond.json() == {"value": []}


# -- the engine in-process, with storage that can be held up ---------------------------------------
class GatedBlobs:
    """Storage whose writes wait for a gate; counts calls."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def write(self, account: str, key: str, container: str, blob: str, data: bytes) -> None:
        with self._lock:
            self.writes.append(blob)
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"

    def read(self, *args: object) -> bytes:
        raise AssertionError("no restore here")

    def cors_allowed_methods(self, *args: object) -> None:
        return None


def _engine(tmp_path: Path, blobs: Any) -> Engine:
    engine = Engine(Store(tmp_path / "state.sqlite"), blobs, op_duration=0)
    engine.initialize(SEED_PATH, reset=True)
    return engine


def _params(name: str = "b") -> BackupRestoreParameters:
    return BackupRestoreParameters(ACCOUNT, "apim-backups", name, "AccessKey", ACCOUNT_KEY, None)


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def test_an_operation_is_finished_once_and_waiters_see_its_outcome(tmp_path: Path) -> None:
    blobs = GatedBlobs()
    engine = _engine(tmp_path, blobs)
    op = engine.start("backup", PROD, _params(), "2024-05-01", "caller")
    first, first_result = _in_thread(engine.complete_due)
    assert blobs.entered.wait(10)
    # While the blob is being written: the service lock is free (other work on the service goes on) ...
    assert engine.update_service(PROD, {"tags": {"during": "write"}})["tags"] == {"during": "write"}
    # ... and a request for the service waits for the outcome instead of answering "still running".
    second, second_result = _in_thread(lambda: engine.complete_due(PROD))
    time.sleep(0.2)
    assert second.is_alive() and first.is_alive()
    blobs.gate.set()
    first.join(10)
    second.join(10)
    assert first_result == [1] and second_result == [1]
    assert blobs.writes == ["b"]  # written once
    done = engine.operation(op["id"])
    assert done is not None and done["status"] == "Succeeded"
    svc = engine.service(PROD)
    assert svc is not None and svc["provisioningState"] == "Succeeded" and svc["tags"] == {"during": "write"}
    engine.close()


def test_many_due_operations_are_finished_in_parallel(tmp_path: Path) -> None:
    blobs = GatedBlobs()
    engine = _engine(tmp_path, blobs)
    for name in BACKUP_CAPABLE:
        engine.start("backup", name, _params(name), "2024-05-01", "caller")
    waiter, result = _in_thread(engine.complete_due)
    deadline = time.monotonic() + 10
    while len(blobs.writes) < len(BACKUP_CAPABLE) and time.monotonic() < deadline:
        time.sleep(0.01)
    # All four writes are in flight at once: none waits for another.
    assert sorted(blobs.writes) == sorted(BACKUP_CAPABLE)
    blobs.gate.set()
    waiter.join(10)
    assert result == [len(BACKUP_CAPABLE)]
    assert {o["status"] for o in engine.store.operations()} == {"Succeeded"}
    assert engine.complete_due() == 0
    engine.close()


def test_reset_waits_for_an_operation_being_finished(tmp_path: Path) -> None:
    blobs = GatedBlobs()
    engine = _engine(tmp_path, blobs)
    engine.start("backup", PROD, _params(), "2024-05-01", "caller")
    finisher, _ = _in_thread(engine.complete_due)
    assert blobs.entered.wait(10)
    resetter, _ = _in_thread(engine.reset)
    time.sleep(0.2)
    assert resetter.is_alive()  # not while the operation is half finished
    blobs.gate.set()
    finisher.join(10)
    resetter.join(10)
    assert engine.store.operations() == []
    svc = engine.service(PROD)
    assert svc is not None and svc["activeOperation"] is None and svc["provisioningState"] == "Succeeded"
    engine.close()


def test_start_reads_cors_outside_the_service_lock(tmp_path: Path) -> None:
    class SlowCors(GatedBlobs):
        def cors_allowed_methods(self, *args: object) -> None:
            self.entered.set()
            assert self.gate.wait(30)

    blobs = SlowCors()
    engine = _engine(tmp_path, blobs)
    starter, result = _in_thread(lambda: engine.start("backup", PROD, _params(), "2024-05-01", "caller"))
    assert blobs.entered.wait(10)
    # The service can be read and changed meanwhile.
    assert engine.update_service(PROD, {"tags": {"x": "1"}})["tags"] == {"x": "1"}
    blobs.gate.set()
    starter.join(10)
    assert result and result[0]["status"] == "Running"
    engine.close()


def test_state_written_by_an_older_emulator_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    engine = _engine(tmp_path, GatedBlobs())
    engine.start("backup", PROD, _params(), "2024-05-01", "caller")
    services = engine.store.services()
    ops = engine.store.operations()
    engine.store.close()
    # The old schema: no derived columns.
    db = sqlite3.connect(path)
    db.executescript(
        """
        DROP TABLE services; DROP TABLE operations;
        DROP INDEX IF EXISTS services_by_subscription; DROP INDEX IF EXISTS services_by_group;
        CREATE TABLE services (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE operations (id TEXT PRIMARY KEY, service TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
        """
    )
    db.executemany("INSERT INTO services VALUES (?, ?)", [(s["name"].lower(), json.dumps(s)) for s in services])
    db.executemany(
        "INSERT INTO operations VALUES (?, ?, ?, ?)",
        [(o["id"], o["service"].lower(), o["status"], json.dumps(o)) for o in ops],
    )
    db.commit()
    db.close()
    store = Store(path)
    items, more = store.service_page(SUB, None, 0, 100)
    assert [json.loads(i)["name"] for i in items] == sorted(s["name"] for s in services) and not more
    assert store.due_operations(time.time() + 1) == [ops[0]["id"]]
    store.close()


@pytest.mark.parametrize("offset", [0, 2, 5, 6])
def test_service_page_matches_the_full_list(tmp_path: Path, offset: int) -> None:
    engine = _engine(tmp_path, GatedBlobs())
    everything = [s["name"] for s in engine.store.services()]
    items, more = engine.service_page(SUB.upper(), None, offset, 2)
    assert [json.loads(i)["name"] for i in items] == everything[offset : offset + 2]
    assert more == (offset + 2 < len(everything))
    group, _ = engine.service_page(SUB, PROD_RG.upper(), 0, 100)
    assert {json.loads(i)["name"] for i in group} == {
        s["name"] for s in engine.store.services() if s["resourceGroup"] == PROD_RG
    }
    engine.store.close()
