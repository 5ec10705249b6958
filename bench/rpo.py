"""The RPO monitor and the status view over 1,000 instances against Azurite (real Blob and Table storage).

Each instance has three tagged backups (a daily schedule with the default ``keepLast``); one in
ten is 30 hours old, so its instance is breached and announced (to the log: no webhook). The
monitor makes one index-tag query per instance; this measures how the number of queries in
flight changes the time of a run, the first run (every ``rpo`` record created) and a steady one
(nothing changed, nothing written), and ``GET /api/status`` for all instances and for one.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from dr_core.azure.blobs import BlobBackupStore
from dr_core.azure.notifier import LogNotifier
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.context import DrContext
from dr_core.kernel.clock import ManualClock
from dr_core.kernel.phases import RpoState
from dr_core.kernel.settings import load_settings
from dr_core.posture.rpo import RpoMonitor
from emulator.apim.seed import storage_accounts
from emulator.azurite import Azurite
from emulator.certs import ensure_tls_files
from emulator.stack import EXAMPLE_SEED

SUB = "00000000-0000-0000-0000-0000000000bb"
ACCOUNT = "apimdrbackups"
CONTAINER = "apim-backups"
NOW = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)


def _seed(blobs: BlobServiceClient, names: list[str]) -> None:
    """Three backups per instance, a day apart; every tenth instance's newest is 30 h old."""
    blobs.create_container(CONTAINER)
    container = blobs.get_container_client(CONTAINER)

    def upload(item: tuple[int, str]) -> None:
        index, name = item
        newest = NOW - timedelta(hours=30 if index % 10 == 0 else 3)
        for day in range(3):
            created = newest - timedelta(days=day)
            container.upload_blob(backup_blob_name(name, created), b"x" * 64, tags=backup_tags(
                service_name=name, sku="Standard", created=created, job_id=f"backup-{index}-{day}", size=64,
                location="West Europe"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(upload, enumerate(names)))


def main(instances: int = 1000, runs: int = 3) -> None:
    logging.getLogger("apim_dr").setLevel(logging.CRITICAL)  # 100 breach lines would drown the figures
    logging.getLogger("dr_core").setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-rpo-"))
    tls = ensure_tls_files(work / "tls")
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_bundle)
    with Azurite(work / "azurite", tls, accounts=storage_accounts(EXAMPLE_SEED)) as azurite:
        names = [f"apim-{uuid.uuid4().hex[:16]}" for _ in range(instances)]
        ids = [f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{n}" for n in names]
        settings = load_settings({
            "AzureWebJobsStorage": azurite.connection_string(),
            "APIM_DR_BACKUP_STORAGE_ACCOUNT": ACCOUNT,
            "APIM_DR_INSTANCES": json.dumps(ids),
        })
        requests: list[str] = []
        blobs = BlobServiceClient.from_connection_string(
            azurite.connection_string(ACCOUNT), raw_response_hook=lambda r: requests.append(r.http_request.method))
        started = time.perf_counter()
        _seed(BlobServiceClient.from_connection_string(azurite.connection_string(ACCOUNT)), names)
        seeded = time.perf_counter() - started
        clock = ManualClock(NOW)
        ctx = DrContext.from_settings(settings, clock=clock)
        ctx = replace(ctx, _backups=BlobBackupStore(blobs, account=ACCOUNT), _notifier=LogNotifier())
        records = ctx.rpo_records()  # creates the table once, outside the timing (as a warm worker has it)

        def monitor(parallel: int) -> RpoMonitor:
            return RpoMonitor(settings=settings, records=records, backups=ctx.backups, notifier=ctx.notifier,
                              resolver=ctx.resolver(), clock=clock, parallel=parallel)

        requests.clear()
        first = monitor(8).check_all()
        first_requests = len(requests)
        assert first.count(RpoState.BREACHED) == instances // 10 and not first.errors
        steady: dict[int, list[float]] = {}
        for parallel in (1, 4, 8, 16):
            for _ in range(runs):
                clock.set(NOW + timedelta(minutes=1))
                report = monitor(parallel).check_all()
                assert not report.errors and not report.announced and not any(r.changed for r in report.results)
                steady.setdefault(parallel, []).append(report.seconds)
        status_times = []
        for _ in range(runs):
            started = time.perf_counter()
            body = ctx.posture_status().build()
            status_times.append(time.perf_counter() - started)
            assert len(body.instances) == instances and not body.problems
        started = time.perf_counter()
        ctx.posture_status().build(names[0])
        one = time.perf_counter() - started

    print(f"== RPO monitor, {instances} instances x 3 backups, Azurite over HTTPS ==")
    print(f"  seeding {instances * 3} tagged backups: {seeded:.1f} s (not part of any figure below)")
    print(f"  first run, 8 queries in flight: {first.seconds:.2f} s ({first_requests} blob requests: one tag query "
          f"per instance, one more per instance turning breached (backups labelled before the catalog tag); "
          f"{sum(r.changed for r in first.results)} rpo records written, {len(first.announced)} breaches announced)")
    for parallel, values in steady.items():
        print(f"  steady run (nothing changed, nothing written), {parallel:>2} in flight: "
              f"median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
    print(f"  GET /api/status body for all {instances}: median {statistics.median(status_times):.2f} s; "
          f"for one instance (?service=): {one:.3f} s")


if __name__ == "__main__":
    main()
