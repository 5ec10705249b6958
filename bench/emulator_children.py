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


def main(services: int = 10_000, apis: int = 1_000, operations: int = 10, puts: int = 1_000,
         workers: int = 8) -> None:
    from azure.mgmt.apimanagement import models as m
    from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params

    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-children-"))
    seed = bench_seed(services)
    big = dict(seed["services"][0])
    big["name"] = BIG
    big["configuration"] = big_configuration(apis, operations)
    seed["services"].append(big)
    rg = big["resourceGroup"]
    setup = time.perf_counter()
    local = LocalAzure(work, seed=seed, retry_after=1, op_duration=0.0)
    try:
        local.start()
        setup_s = time.perf_counter() - setup
        assert local.apim is not None
        admin = local.apim.admin
        admin.set_arm_roles(None)
        credential = _arm_token(local)
        with _client(local, credential) as client:
            list_walls, list_server = [], []
            for _ in range(3):
                admin.clear_requests()
                started = time.perf_counter()
                listed = sum(1 for _ in client.api.list_by_service(rg, BIG))
                list_walls.append(time.perf_counter() - started)
                pages = admin.requests(method="GET", path_contains=f"/service/{BIG}/apis")
                list_server.append(sum(float(e["durationMs"]) for e in pages) / max(1, len(pages)))
            assert listed == apis, listed

            def read_operations(index: int) -> int:
                return sum(1 for _ in client.api_operation.list_by_api(rg, BIG, f"api-{index:04d}"))

            admin.clear_requests()
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                read_total = sum(pool.map(read_operations, range(apis)))
            read_wall = time.perf_counter() - started
            read_server = [float(e["durationMs"]) for e in admin.requests(method="GET")]

            def put_policy(index: int) -> float:
                began = time.perf_counter()
                client.api_operation_policy.create_or_update(
                    rg, BIG, f"api-{index % apis:04d}", f"op-{(index // apis) % operations:02d}", "policy",
                    m.PolicyContract(value=POLICY))
                return time.perf_counter() - began

            half = puts // 2
            started = time.perf_counter()
            sequential = [put_policy(i) for i in range(half)]
            sequential_wall = time.perf_counter() - started
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                parallel = list(pool.map(put_policy, range(half, puts)))
            parallel_wall = time.perf_counter() - started

            account = local.seed_data["storageAccounts"][0]
            params = Params(storage_account=account["name"], container_name="bench", backup_name="big.apimbackup",
                            access_type="AccessKey", access_key=account["key"])
            started = time.perf_counter()
            client.api_management_service.begin_backup(rg, BIG, params, polling_interval=0.2).result()
            backup_s = time.perf_counter() - started
            started = time.perf_counter()
            client.api_management_service.begin_restore(rg, BIG, params, polling_interval=0.2).result()
            restore_s = time.perf_counter() - started
            after = sum(1 for _ in client.api.list_by_service(rg, BIG))
    finally:
        local.stop()
        shutil.rmtree(work, ignore_errors=True)

    entities = apis * (operations + 2)
    print("== APIM emulator: configuration child resources (official client; 2 shared cores) ==")
    print(f"  start-up with {services + 1} services, one of {apis} APIs x {operations} operations "
          f"(~{entities:,} entities): {setup_s:.1f} s (Azurite + emulator)")
    print(f"  list {apis} APIs ({-(-apis // 100)} pages): median {statistics.median(list_walls):.2f} s; "
          f"emulator {statistics.median(list_server):.1f} ms/page")
    print(f"  read every operation ({apis} lists, {read_total} operations, {workers} threads): {read_wall:.1f} s, "
          f"{apis / read_wall:.0f} req/s; emulator p50 {_pct(read_server, 0.5):.1f} ms, "
          f"p95 {_pct(read_server, 0.95):.1f} ms")
    print(f"  PUT {half} operation policies one by one: {sequential_wall:.1f} s ({half / sequential_wall:.0f}/s, "
          f"p50 {_pct(sequential, 0.5) * 1000:.0f} ms, p95 {_pct(sequential, 0.95) * 1000:.0f} ms)")
    print(f"  PUT {puts - half} operation policies, {workers} threads: {parallel_wall:.1f} s "
          f"({(puts - half) / parallel_wall:.0f}/s, p50 {_pct(parallel, 0.5) * 1000:.0f} ms, "
          f"p95 {_pct(parallel, 0.95) * 1000:.0f} ms)")
    print(f"  native backup of the big instance: {backup_s:.1f} s; restore: {restore_s:.1f} s "
          f"({after} APIs after the restore)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--apis", type=int, default=1_000)
    parser.add_argument("--operations", type=int, default=10)
    parser.add_argument("--puts", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    main(args.services, args.apis, args.operations, args.puts, args.workers)
