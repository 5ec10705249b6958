"""The copy to the second account at 1,000 instances: time and storage requests (Azurite behind the blob front).

Each instance has one backup (the size of an emulated APIM backup, ~9 KiB) and its manifest in the backup
account. Measured, with the app's real adapters (dr_core/azure/copies.py's Put Blob From URL through the blob
front, which performs it as Azure does; Azurite's Blob and Table storage):

1. the follower's work for every backup (what the worker does after each backup succeeds), 16 at a time as
   parallel queue invocations would: wall time, per-backup latency, storage requests per backup by operation;
2. the hourly catch-up when nothing is missing (its steady cost: two tag queries per instance);
3. the catch-up when every copy is missing (after an outage of the copy account), 8 instances at a time.

Every request the app sends is counted by operation from the SDK's response hook. Azure bills the copy
account one write transaction per Put Blob From URL and the source account one read, plus geo-egress of the
bytes between the regions (printed as the total size copied).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient

from dr_core.azure.blobs import BlobBackupStore
from dr_core.azure.copies import BlobServerSideCopier
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import backup_tags
from dr_core.context import DrContext
from dr_core.copies.copier import BackupCopies, PointOutcome
from dr_core.kernel.clock import ManualClock
from dr_core.kernel.settings import load_settings
from emulator.apim.seed import storage_accounts
from emulator.azurite import Azurite
from emulator.blobfront import BlobFront
from emulator.certs import ensure_tls_files
from emulator.stack import EXAMPLE_SEED

SUB = "00000000-0000-0000-0000-0000000000cc"
PRIMARY, COPY = "apimdrbackups", "apimdrcopies"
CONTAINER = "apim-backups"
NOW = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)
BACKUP_BYTES = 9 * 1024  # an emulated APIM backup of the example instance is ~9 KB of JSON
_OID = str(uuid.uuid4())


class _Token:
    """A storage token Azurite's --oauth basic accepts (it verifies no signature); the front sets no roles here."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        now = int(time.time())
        claims = {"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-"
                  "2d7cd011db47/", "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "oid": _OID,
                  "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47"}
        return AccessToken(jwt.encode(claims, "bench-signing-key-long-enough-for-hs256", algorithm="HS256"),
                           now + 3600)


class _Counter:
    """Storage requests the app sent, by account and Blob REST operation (from the SDK's response hook)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def hook(self, response: Any) -> None:
        request = response.http_request
        parts = urlsplit(request.url)
        query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
        account = parts.path.strip("/").split("/", 1)[0]
        comp = query.get("comp", "")
        method = request.method
        if method == "PUT" and "x-ms-copy-source" in {k.lower() for k in request.headers}:
            name = "PutBlobFromURL" if comp == "" else "PutBlockFromURL"
        else:
            name = {("HEAD", ""): "GetBlobProperties", ("GET", ""): "GetBlob", ("PUT", "tags"): "SetBlobTags",
                    ("GET", "tags"): "GetBlobTags", ("GET", "blobs"): "FindBlobsByTags",
                    ("PUT", "blocklist"): "PutBlockList"}.get((method, comp), f"{method} {comp}")
        with self.lock:
            self.counts[(account, name)] += 1

    def take(self) -> Counter[tuple[str, str]]:
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts


def _seed(primary: BlobServiceClient, names: list[str]) -> list[str]:
    primary.create_container(CONTAINER)
    container = primary.get_container_client(CONTAINER)
    body = b"x" * BACKUP_BYTES
    blobs: list[str] = []

    def upload(item: tuple[int, str]) -> str:
        index, name = item
        created = NOW - timedelta(hours=1)
        blob = backup_blob_name(name, created)
        container.upload_blob(blob, body, tags=backup_tags(service_name=name, sku="Standard", created=created,
                                                           job_id=f"backup-{index}", size=len(body),
                                                           location="West Europe"))
        container.upload_blob(blob + ".manifest.json", json.dumps({"format": "apim-dr/manifest", "apis": ["a"]}))
        return blob

    with ThreadPoolExecutor(max_workers=16) as pool:
        blobs = list(pool.map(upload, enumerate(names)))
    return blobs


def _per_backup(counts: Counter[tuple[str, str]], backups: int) -> str:
    return ", ".join(f"{account}:{op} {n / backups:.2f}" for (account, op), n in sorted(counts.items()))


def main(instances: int = 1000, parallel_followers: int = 16) -> None:
    logging.getLogger("apim_dr").setLevel(logging.CRITICAL)
    logging.getLogger("dr_core").setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-copies-"))
    tls = ensure_tls_files(work / "tls")
    os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_bundle)
    with Azurite(work / "azurite", tls, accounts=storage_accounts(EXAMPLE_SEED)) as azurite:
        front = BlobFront(azurite.endpoint("blob", "").rstrip("/"), tls, accounts=azurite.all_accounts()).start()
        try:
            _run(azurite, front, instances, parallel_followers)
        finally:
            front.stop()


def _run(azurite: Azurite, front: BlobFront, instances: int, parallel_followers: int) -> None:
    names = [f"apim-{uuid.uuid4().hex[:16]}" for _ in range(instances)]
    ids = [f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{n}" for n in names]
    settings = load_settings({
        "AzureWebJobsStorage": azurite.connection_string(),
        "APIM_DR_BACKUP_STORAGE_ACCOUNT": PRIMARY, "APIM_DR_BACKUP_BLOB_ENDPOINT": front.endpoint(PRIMARY),
        "APIM_DR_COPY_STORAGE_ACCOUNT": COPY, "APIM_DR_COPY_BLOB_ENDPOINT": front.endpoint(COPY),
        "APIM_DR_INSTANCES": json.dumps(ids),
    })
    seeded = time.perf_counter()
    blobs = _seed(BlobServiceClient.from_connection_string(front.connection_string(PRIMARY)), names)
    BlobServiceClient.from_connection_string(front.connection_string(COPY)).create_container(CONTAINER)
    print(f"copies: {instances} instances, one {BACKUP_BYTES // 1024} KiB backup + manifest each "
          f"(seeded in {time.perf_counter() - seeded:.1f} s)")
    counter = _Counter()
    credential = _Token()
    clients = [BlobServiceClient(front.endpoint(account), credential=credential, raw_response_hook=counter.hook)
               for account in (PRIMARY, COPY)]
    context = DrContext.from_settings(settings, clock=ManualClock(NOW))
    context.clients.ensure_app_storage()
    copier = BlobServerSideCopier(clients[0], clients[1], credential, source_account=PRIMARY, target_account=COPY)
    copies = BackupCopies(settings=settings, backups=BlobBackupStore(clients[0], account=PRIMARY),
                          copies=BlobBackupStore(clients[1], account=COPY), copier=copier,
                          records=context.copy_records(), resolver=context.resolver(), clock=context.clock)

    # 1. The follower, once per backup, as parallel worker invocations run it.
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    def follow(item: tuple[Any, str]) -> None:
        instance, blob = item
        started = time.perf_counter()
        result = copies.copy_backup(instance, blob)
        latencies.append(time.perf_counter() - started)
        outcomes[result.outcome.value if result else "none"] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel_followers) as pool:
        list(pool.map(follow, zip(settings.instances, blobs, strict=True)))
    elapsed = time.perf_counter() - started
    counts = counter.take()
    quantiles = statistics.quantiles(latencies, n=20)
    print(f"  follower, {parallel_followers} at a time: {elapsed:.1f} s for {instances} backups "
          f"({instances / elapsed:.0f}/s); per backup p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {quantiles[18] * 1000:.0f} ms; outcomes {dict(outcomes)}")
    print(f"    storage requests per backup ({sum(counts.values()) / instances:.1f} in all): "
          f"{_per_backup(counts, instances)}; plus the copy record (1 table read + 1 write)")
    print(f"    bytes copied between the accounts: {instances * (BACKUP_BYTES + 40) / 1024 / 1024:.1f} MiB "
          "(geo-egress, billed to the source account)")

    # 2. The catch-up with nothing missing.
    started = time.perf_counter()
    report = copies.catch_up()
    elapsed = time.perf_counter() - started
    counts = counter.take()
    print(f"  catch-up, nothing missing: {elapsed:.1f} s, {sum(counts.values())} requests "
          f"({_per_backup(counts, instances)} per instance); copied {report.totals()[PointOutcome.COPIED.value]}")

    # 3. The catch-up when the copy account lost everything (or was down for every backup).
    target = BlobServiceClient.from_connection_string(front.connection_string(COPY)).get_container_client(CONTAINER)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(target.delete_blob, [b.name for b in target.list_blobs()]))
    started = time.perf_counter()
    report = copies.catch_up()
    elapsed = time.perf_counter() - started
    counts = counter.take()
    totals = report.totals()
    print(f"  catch-up, every copy missing: {elapsed:.1f} s ({totals[PointOutcome.COPIED.value]} copied, "
          f"{totals[PointOutcome.FAILED.value]} failed, 8 instances at a time); "
          f"{sum(counts.values()) / instances:.1f} requests per instance")


if __name__ == "__main__":
    main()
