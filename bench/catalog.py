"""The backup catalog (``GET /api/backups?service=``) at 100, 1,000 and 2,000 backups, on local Azure.

The app path: the host stand-in answers the HTTP request, the app reads the service from the APIM
emulator and the catalog from Azurite with its managed identity (one Find Blobs by Tags query plus
its pages). Another service's backups sit in the same container, as many again, so the query must
filter. Side by side in the same run, on the same blobs: the catalog read the way it was before
issue 9 (list the service's blobs, then one Get Blob Tags per blob), in process with the same SDK.
The goal in issue 9: at most 0.3 s at 2,000 backups locally.
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from dr_core.azure.blobs import BlobBackupStore
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.kernel.settings import default_of

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTAINER = default_of("APIM_DR_BACKUP_CONTAINER")
SERVICE = "apim-contoso-prod"
OTHER = "apim-contoso-premium"
SIZES = (100, 1000, 2000)


def _upload(container: ContainerClient, service: str, count: int, *, start: int = 0) -> None:
    """``count`` tagged backups of ``service``, a minute apart, newest now (all within the 30 days)."""
    now = datetime.now(UTC).replace(microsecond=0)

    def one(index: int) -> None:
        created = now - timedelta(minutes=index)  # 2,000 minutes: 33 h, well inside the 30 days
        container.upload_blob(backup_blob_name(service, created), b"x" * 64, tags=backup_tags(
            service_name=service, sku="Developer", created=created, job_id=f"backup-bench-{index:05d}", size=64,
            location="West Europe"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(start, start + count)))


def _per_blob(container: ContainerClient, service: str) -> int:
    """The catalog as it was read before issue 9: a listing, then one tag read per blob."""
    read = 0
    for blob in container.list_blobs(name_starts_with=f"{service}/"):
        container.get_blob_client(blob.name).get_blob_tags()
        read += 1
    return read


def _median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(runs: int = 5) -> None:
    from dr_core.context import reset_context
    from emulator.funchost import FunctionsHost
    from emulator.stack import LocalAzure

    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-catalog-"))
    rows = []
    with LocalAzure(work) as local:
        assert local.apim and local.tls and local.azurite
        os.environ["REQUESTS_CA_BUNDLE"] = str(local.tls.ca_bundle)
        account = local.backup_account
        blobs = BlobServiceClient.from_connection_string(local.azurite.connection_string(account))
        container = blobs.get_container_client(CONTAINER)
        if not container.exists():
            container.create_container()
        counted: list[str] = []
        counting = BlobServiceClient.from_connection_string(
            local.azurite.connection_string(account), raw_response_hook=lambda r: counted.append(r.http_request.method))
        store = BlobBackupStore(counting, account=account)
        settings = local.app_settings([local.resource_id(SERVICE)])
        host = FunctionsHost(PROJECT_ROOT, settings, run_queues=False, http_port=0)
        host.start()
        url = f"{host.http_url}/api/backups"
        headers = {"x-functions-key": next(iter(host.function_keys.values()))}

        def get_catalog(expected: int) -> None:
            answer = requests.get(url, params={"service": SERVICE}, headers=headers, timeout=120)
            assert answer.status_code == 200, answer.text[:300]
            listed = answer.json()["backups"]
            assert len(listed) == expected and all(b["restorable"] for b in listed), answer.text[:300]

        try:
            seeded = 0
            for size in SIZES:
                _upload(container, SERVICE, size - seeded, start=seeded)
                _upload(container, OTHER, size - seeded, start=seeded)
                seeded = size
                get_catalog(size)  # warm: connections, token, the host's worker
                http = _median_seconds(functools.partial(get_catalog, size), runs)
                counted.clear()
                found = store.find(CONTAINER, SERVICE)
                query_requests = len(counted)
                assert len(found) == size
                query = _median_seconds(lambda: store.find(CONTAINER, SERVICE), runs)
                assert _per_blob(container, SERVICE) == size
                per_blob = _median_seconds(lambda: _per_blob(container, SERVICE), max(1, runs // 2))
                rows.append((size, http, query, query_requests, per_blob))
        finally:
            host.stop()
            reset_context()

    print(f"== backup catalog, one service among two in one container, median of {runs} (Azurite over HTTPS) ==")
    print(f"  {'backups':>7}  {'GET /api/backups':>16}  {'tag query (app)':>15}  {'requests':>8}  "
          f"{'list + tags per blob':>20}  {'ratio':>6}")
    for size, http, query, query_requests, per_blob in rows:
        print(f"  {size:>7,}  {http:>14.3f} s  {query:>13.3f} s  {query_requests:>8}  {per_blob:>18.3f} s  "
              f"{per_blob / query:>5.0f}x")
    print("  (goal, issue 9: GET /api/backups at most 0.3 s at 2,000 backups; the query's pages hold up to 5,000)")


if __name__ == "__main__":
    main()
