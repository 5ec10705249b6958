"""The APIM emulator's configuration child resources under load, through the official client.

One emulator holding N services (the example seed's production instance copied, as in
``bench.emulator_load``) plus one big instance with A APIs x O operations and a policy on each API:

- **start-up**: seeding everything (Azurite + emulator);
- **list APIs**: ``api.list_by_service`` over the A APIs (pages of 100 through ``nextLink``): wall time and the
  emulator's own time per page (request log ``durationMs``);
- **read every operation**: ``api_operation.list_by_api`` for each API (what a configuration snapshot does),
  W client threads: wall time, requests/s;
- **PUT items**: P operation policies with ``api_operation_policy.create_or_update`` (one per API), sequentially
  and with W threads: requests/s and latency;
- **backup and restore** of the big instance (native, access key): seconds from POST to the end.

``python -m bench.emulator_children [--services N] [--apis A] [--operations O] [--puts P] [--workers W]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.emulator_load import _arm_token, _client, _pct, bench_seed
from emulator.stack import LocalAzure

BIG = "apim-bench-big"
POLICY = (
    "<policies><inbound><base /><set-header name=\"x-bench\" exists-action=\"override\"><value>1</value>"
    "</set-header></inbound></policies>"
)


def big_configuration(apis: int, operations: int) -> dict[str, Any]:
    """A configuration document of ``apis`` APIs with ``operations`` operations and a policy each."""
    return {
        "apis": [
            {
                "id": f"api-{a:04d}",
                "displayName": f"API {a}",
                "path": f"api-{a:04d}",
                "serviceUrl": f"https://backend-{a}.contoso.com",
                "protocols": ["https"],
                "operations": [
                    {"id": f"op-{o:02d}", "displayName": f"Operation {o}", "method": "GET", "urlTemplate": f"/op{o}"}
                    for o in range(operations)
                ],
                "policy": {"value": POLICY, "format": "xml"},
            }
            for a in range(apis)
        ],
        "products": [{"id": "everything", "displayName": "Everything", "state": "published",
                      "apis": [f"api-{a:04d}" for a in range(apis)][:100]}],
    }


@dataclass
class Figures:
    setup_s: float = 0.0
    list_walls: list[float] = field(default_factory=list)
    list_server: list[float] = field(default_factory=list)
    read_total: int = 0
    read_wall: float = 0.0
    read_server: list[float] = field(default_factory=list)
    sequential: list[float] = field(default_factory=list)
    sequential_wall: float = 0.0
    parallel: list[float] = field(default_factory=list)
    parallel_wall: float = 0.0
    backup_s: float = 0.0
    restore_s: float = 0.0
    after: int = 0


def _measure_lists(client: Any, admin: Any, rg: str, apis: int, figures: Figures) -> None:
    for _ in range(3):
        admin.clear_requests()
        started = time.perf_counter()
        listed = sum(1 for _ in client.api.list_by_service(rg, BIG))
        figures.list_walls.append(time.perf_counter() - started)
        pages = admin.requests(method="GET", path_contains=f"/service/{BIG}/apis")
        figures.list_server.append(sum(float(e["durationMs"]) for e in pages) / max(1, len(pages)))
    assert listed == apis, listed


def _measure_reads(client: Any, admin: Any, rg: str, *, apis: int, workers: int, figures: Figures) -> None:
    def read_operations(index: int) -> int:
        return sum(1 for _ in client.api_operation.list_by_api(rg, BIG, f"api-{index:04d}"))

    admin.clear_requests()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        figures.read_total = sum(pool.map(read_operations, range(apis)))
    figures.read_wall = time.perf_counter() - started
    figures.read_server = [float(e["durationMs"]) for e in admin.requests(method="GET")]


def _measure_puts(client: Any, rg: str, *, apis: int, operations: int, puts: int, workers: int,
                  figures: Figures) -> None:
    from azure.mgmt.apimanagement import models as m

    def put_policy(index: int) -> float:
        began = time.perf_counter()
        client.api_operation_policy.create_or_update(
            rg, BIG, f"api-{index % apis:04d}", f"op-{(index // apis) % operations:02d}", "policy",
            m.PolicyContract(value=POLICY))
        return time.perf_counter() - began

    half = puts // 2
    started = time.perf_counter()
    figures.sequential = [put_policy(i) for i in range(half)]
    figures.sequential_wall = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        figures.parallel = list(pool.map(put_policy, range(half, puts)))
    figures.parallel_wall = time.perf_counter() - started


def _measure_backup_restore(client: Any, local: Any, rg: str, figures: Figures) -> None:
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params

    account = local.seed_data["storageAccounts"][0]
    params = Params(storage_account=account["name"], container_name="bench", backup_name="big.apimbackup",
                    access_type="AccessKey", access_key=account["key"])
    started = time.perf_counter()
    client.api_management_service.begin_backup(rg, BIG, params, polling_interval=0.2).result()
    figures.backup_s = time.perf_counter() - started
    started = time.perf_counter()
    client.api_management_service.begin_restore(rg, BIG, params, polling_interval=0.2).result()
    figures.restore_s = time.perf_counter() - started
    figures.after = sum(1 for _ in client.api.list_by_service(rg, BIG))


def main(services: int = 10_000, apis: int = 1_000, operations: int = 10, puts: int = 1_000,
         workers: int = 8) -> None:
    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-children-"))
    seed = bench_seed(services)
    big = dict(seed["services"][0])
    big["name"] = BIG
    big["configuration"] = big_configuration(apis, operations)
    seed["services"].append(big)
    rg = big["resourceGroup"]
    figures = Figures()
    setup = time.perf_counter()
    local = LocalAzure(work, seed=seed, retry_after=1, op_duration=0.0)
    try:
        local.start()
        figures.setup_s = time.perf_counter() - setup
        assert local.apim is not None
        admin = local.apim.admin
        admin.set_arm_roles(None)
        with _client(local, _arm_token(local)) as client:
            _measure_lists(client, admin, rg, apis, figures)
            _measure_reads(client, admin, rg, apis=apis, workers=workers, figures=figures)
            _measure_puts(client, rg, apis=apis, operations=operations, puts=puts, workers=workers, figures=figures)
            _measure_backup_restore(client, local, rg, figures)
    finally:
        local.stop()
        shutil.rmtree(work, ignore_errors=True)
    _report(figures, services=services, apis=apis, operations=operations, puts=puts, workers=workers)


def _report(f: Figures, *, services: int, apis: int, operations: int, puts: int, workers: int) -> None:
    half = puts // 2
    entities = apis * (operations + 2)
    print("== APIM emulator: configuration child resources (official client; 2 shared cores) ==")
    print(f"  start-up with {services + 1} services, one of {apis} APIs x {operations} operations "
          f"(~{entities:,} entities): {f.setup_s:.1f} s (Azurite + emulator)")
    print(f"  list {apis} APIs ({-(-apis // 100)} pages): median {statistics.median(f.list_walls):.2f} s; "
          f"emulator {statistics.median(f.list_server):.1f} ms/page")
    print(f"  read every operation ({apis} lists, {f.read_total} operations, {workers} threads): "
          f"{f.read_wall:.1f} s, {apis / f.read_wall:.0f} req/s; emulator p50 {_pct(f.read_server, 0.5):.1f} ms, "
          f"p95 {_pct(f.read_server, 0.95):.1f} ms")
    print(f"  PUT {half} operation policies one by one: {f.sequential_wall:.1f} s "
          f"({half / f.sequential_wall:.0f}/s, p50 {_pct(f.sequential, 0.5) * 1000:.0f} ms, "
          f"p95 {_pct(f.sequential, 0.95) * 1000:.0f} ms)")
    print(f"  PUT {puts - half} operation policies, {workers} threads: {f.parallel_wall:.1f} s "
          f"({(puts - half) / f.parallel_wall:.0f}/s, p50 {_pct(f.parallel, 0.5) * 1000:.0f} ms, "
          f"p95 {_pct(f.parallel, 0.95) * 1000:.0f} ms)")
    print(f"  native backup of the big instance: {f.backup_s:.1f} s; restore: {f.restore_s:.1f} s "
          f"({f.after} APIs after the restore)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--apis", type=int, default=1_000)
    parser.add_argument("--operations", type=int, default=10)
    parser.add_argument("--puts", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    main(args.services, args.apis, args.operations, args.puts, args.workers)
