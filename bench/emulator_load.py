"""The APIM emulator under load, through the official client: is the local world what bounds a benchmark?

Two figures, on Azurite + the emulator (a child process, as in the tests), with
``azure-mgmt-apimanagement`` changed only in ``base_url`` and CA bundle:

- **list**: ``api_management_service.list()`` over N services in one subscription (pages of 100 through
  ``nextLink``, as tag discovery does): wall time, pages/s, and the emulator's own time per page (its
  request log's ``durationMs``), so client-side deserialisation and server time can be told apart;
- **backup burst**: M backups started at once and polled to the end, the way the app's queue worker does
  it (``begin_backup(..., polling=False)``, then one ``GET Location`` per Retry-After), by a pool of W
  client threads, each with its own client: wall time from the first POST to the last 200, ARM requests/s,
  per-request latency, and how late operations were seen finished after their due end
  (``startedAt + duration``; the ideal is under one Retry-After).

``python -m bench.emulator_load [--services N] [--operations M] [--workers W] [--op-duration S]``.
Set ``APIM_BENCH_KEEP=1`` to keep the work directory (the emulator's log and state) afterwards.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from emulator.stack import EXAMPLE_SEED, LocalAzure

BACKUP_TEMPLATE = "apim-contoso-prod"  # Standard, system-assigned identity with a blob data role in the seed
ACCOUNT = "apimdrbackups"


def bench_seed(services: int) -> dict[str, Any]:
    """The example seed with ``services`` copies of its production instance, every second one tagged."""
    seed = json.loads(EXAMPLE_SEED.read_text())
    template = next(s for s in seed["services"] if s["name"] == BACKUP_TEMPLATE)
    generated = []
    for i in range(services):
        svc = copy.deepcopy(template)
        svc["name"] = f"apim-bench-{i:05d}"
        svc.pop("hostnameConfigurations")  # the default Proxy host for the new name
        svc["tags"] = {"environment": "bench", "apim-dr:backup": "true" if i % 2 == 0 else "false"}
        generated.append(svc)
    seed["services"] = generated
    return seed


class _StaticToken:
    """A credential holding one ARM token from the emulator's identity endpoint (valid for 24 h)."""

    def __init__(self, token: str, expires_on: int) -> None:
        from azure.core.credentials import AccessToken

        self._token = AccessToken(token, expires_on)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return self._token


def _arm_token(local: LocalAzure) -> _StaticToken:
    assert local.apim is not None
    answer = requests.get(
        local.apim.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com/"},
        headers={"X-IDENTITY-HEADER": local.apim.identity_header},
        timeout=30,
    )
    answer.raise_for_status()
    body = answer.json()
    return _StaticToken(body["access_token"], int(body["expires_on"]))


def _client(local: LocalAzure, credential: _StaticToken) -> Any:
    from azure.mgmt.apimanagement import ApiManagementClient

    assert local.apim is not None
    return ApiManagementClient(
        credential, local.subscription_id, base_url=local.apim.arm_url, connection_verify=str(local.apim.ca_bundle)
    )


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _pids(local: LocalAzure) -> dict[str, int | None]:
    assert local.apim is not None
    proc = getattr(local.azurite, "_proc", None)
    return {
        "emulator": int(json.loads(local.apim.ready_file.read_text())["pid"]),
        "Azurite": proc.pid if proc is not None else None,
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- (a) listing ---------------------------------------------------------------------------------
def bench_list(local: LocalAzure, credential: _StaticToken, runs: int) -> dict[str, Any]:
    assert local.apim is not None
    admin = local.apim.admin
    walls, server_ms, counts, pages = [], [], [], []
    with _client(local, credential) as client:
        for _ in range(runs):
            admin.clear_requests()
            started = time.perf_counter()
            count = sum(1 for _ in client.api_management_service.list())
            walls.append(time.perf_counter() - started)
            counts.append(count)
            entries = admin.requests(method="GET", path_contains="/providers/Microsoft.ApiManagement/service")
            pages.append(len(entries))
            server_ms.append(sum(float(e["durationMs"]) for e in entries))
    return {"walls": walls, "serverMs": server_ms, "count": counts[-1], "pages": pages[-1]}


# -- (b) backup burst ----------------------------------------------------------------------------
@dataclass(order=True)
class _Task:
    due: float
    seq: int
    service: str = field(compare=False)
    location: str | None = field(compare=False, default=None)


@dataclass
class _Burst:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"POST": [], "GET": []})
    errors: dict[str, int] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)  # service -> wall time the 200 was seen
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            self.requests += 1

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def _scheduler(tasks: list[_Task], workers: int, work: Callable[[_Task], _Task | None]) -> None:
    """Run tasks when due on ``workers`` threads; ``work`` returns the follow-up task (a poll) or None."""
    heap = list(tasks)
    heapq.heapify(heap)
    cond = threading.Condition()
    active = [0]

    def loop() -> None:
        while True:
            with cond:
                while True:
                    if not heap and active[0] == 0:
                        cond.notify_all()
                        return
                    if heap and heap[0].due <= time.monotonic():
                        task = heapq.heappop(heap)
                        active[0] += 1
                        break
                    cond.wait(timeout=max(0.0, heap[0].due - time.monotonic()) if heap else 0.5)
            follow_up = None
            try:
                follow_up = work(task)
            finally:
                with cond:
                    active[0] -= 1
                    if follow_up is not None:
                        heapq.heappush(heap, follow_up)
                    cond.notify_all()

    threads = [threading.Thread(target=loop, name=f"bench-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def bench_backups(
    local: LocalAzure, credential: _StaticToken, operations: int, workers: int
) -> tuple[float, _Burst]:
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params

    assert local.apim is not None
    burst = _Burst()
    local_clients = threading.local()
    seq = iter(range(10**9))
    stamp = time.strftime("%Y%m%dT%H%M%S")

    def client() -> Any:
        if not hasattr(local_clients, "client"):
            local_clients.client = _client(local, credential)
        return local_clients.client

    def work(task: _Task) -> _Task | None:
        api = client()
        started = time.perf_counter()
        try:
            if task.location is None:
                poller = api.api_management_service.begin_backup(
                    "rg-apim-prod",
                    task.service,
                    Params(
                        storage_account=ACCOUNT,
                        container_name="bench",
                        backup_name=f"{task.service}/{stamp}.apimbackup",
                        access_type="SystemAssignedManagedIdentity",
                    ),
                    polling=False,
                    cls=lambda pipeline_response, _d, _h: pipeline_response,
                )
                response = poller.result().http_response
                burst.record("POST", time.perf_counter() - started)
            else:
                response = api._client.send_request(HttpRequest("GET", task.location))
                burst.record("GET", time.perf_counter() - started)
        except HttpResponseError as exc:
            burst.error(f"{'POST' if task.location is None else 'GET'} {exc.status_code}")
            return None
        if response.status_code == 202:
            retry_after = float(response.headers.get("Retry-After") or 1)
            location = response.headers.get("Location") or task.location
            return _Task(time.monotonic() + retry_after, next(seq), task.service, location)
        if response.status_code == 200:
            with burst.lock:
                burst.finished[task.service] = time.time()
        else:
            burst.error(f"GET {response.status_code}")
        return None

    tasks = [_Task(0.0, next(seq), f"apim-bench-{i:05d}") for i in range(operations)]
    started = time.perf_counter()
    _scheduler(tasks, workers, work)
    return time.perf_counter() - started, burst


def _lateness(local: LocalAzure, burst: _Burst) -> list[float]:
    """Seconds between each operation's due end and the client seeing its 200."""
    assert local.apim is not None
    late = []
    for op in local.apim.admin.operations():
        seen = burst.finished.get(op["service"])
        if seen is not None and op["status"] == "Succeeded":
            late.append(seen - (float(op["startedAt"]) + float(op["duration"])))
    return late


def main(
    services: int = 10_000, operations: int = 1_000, workers: int = 64, op_duration: float = 5.0, list_runs: int = 3
) -> None:
    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-emulator-"))
    seed = bench_seed(max(services, operations))
    setup = time.perf_counter()
    local = LocalAzure(work, seed=seed, retry_after=1, op_duration=op_duration)
    try:
        local.start()
        setup_s = time.perf_counter() - setup
        assert local.apim is not None
        credential = _arm_token(local)
        listing = bench_list(local, credential, list_runs)
        local.apim.admin.clear_requests()
        pids = _pids(local)
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        client_cpu = time.process_time()
        burst_wall, burst = bench_backups(local, credential, operations, workers)
        cpu = {"client": time.process_time() - client_cpu}
        for name, pid in pids.items():
            after, before = _cpu_seconds(pid), cpu_before[name]
            if after is not None and before is not None:
                cpu[name] = after - before
        late = _lateness(local, burst)
        server = local.apim.admin.requests()
    finally:
        local.stop()
        if not os.environ.get("APIM_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)

    print("== APIM emulator under load (official client; 2 cores shared by client, emulator and Azurite) ==")
    print(f"  start-up with {len(seed['services'])} seeded services: {setup_s:.1f} s (Azurite + emulator)")
    walls = listing["walls"]
    wall = statistics.median(walls)
    print(
        f"  list {listing['count']} services by subscription, {listing['pages']} pages: "
        f"median {wall:.2f} s (min {min(walls):.2f}, {listing['pages'] / wall:.0f} pages/s); "
        f"emulator time {statistics.median(listing['serverMs']) / 1000:.2f} s "
        f"({statistics.median(listing['serverMs']) / max(1, listing['pages']):.1f} ms/page)"
    )
    posts, gets = burst.latencies["POST"], burst.latencies["GET"]
    done = len(burst.finished)
    print(
        f"  backup burst: {operations} operations ({op_duration:g} s each, Retry-After 1 s), {workers} client threads: "
        f"{done} succeeded in {burst_wall:.1f} s wall, {burst.requests} ARM requests = "
        f"{burst.requests / burst_wall:.0f} req/s"
    )
    print(
        f"    POST latency p50 {_pct(posts, 0.5) * 1000:.0f} ms, p95 {_pct(posts, 0.95) * 1000:.0f} ms; "
        f"GET p50 {_pct(gets, 0.5) * 1000:.0f} ms, p95 {_pct(gets, 0.95) * 1000:.0f} ms; "
        f"{len(gets)} polls ({len(gets) / max(1, done):.1f} per operation)"
    )
    server_ms = [float(e["durationMs"]) for e in server if e.get("server") == "arm"]
    print(
        f"    emulator time per request p50 {_pct(server_ms, 0.5):.1f} ms, p95 {_pct(server_ms, 0.95):.1f} ms; "
        f"finished seen after due end: p50 {_pct(late, 0.5):.2f} s, max {max(late, default=float('nan')):.2f} s"
    )
    per_request = ""
    if "emulator" in cpu:
        per_request = f" (emulator {cpu['emulator'] * 1000 / max(1, len(server_ms)):.1f} ms per ARM request)"
    print("    CPU during the burst: " + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items()) + per_request)
    if burst.errors:
        print(f"    errors: {', '.join(f'{k}: {v}' for k, v in sorted(burst.errors.items()))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--operations", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--op-duration", type=float, default=5.0)
    parser.add_argument("--list-runs", type=int, default=3)
    args = parser.parse_args()
    main(args.services, args.operations, args.workers, args.op_duration, args.list_runs)
