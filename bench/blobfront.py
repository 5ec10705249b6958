"""What the blob front costs: the same SDK calls straight to Azurite and through the front.

- small requests: median wall time of Get Blob Properties (HEAD) and of a 1 KiB Put Blob, on one
  keep-alive client each, direct and through the front (without and with a container policy: a write
  under a policy costs the front one HEAD to Azurite to learn whether the blob exists and how old it is);
- bulk: 24 MiB up (Put Blob of 4 MiB blocks) and down (one Get Blob), direct and through the front.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from emulator.azurite import DEV_ACCOUNT, Azurite
from emulator.blobfront import BlobFront
from emulator.certs import ensure_tls_files

ROUNDS = 200
MIB = 1024 * 1024


def _median_ms(call: Callable[[], object], rounds: int = ROUNDS) -> float:
    for _ in range(10):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _client(connection_string: str, ca: Path) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(connection_string, connection_verify=str(ca),
                                                    max_single_put_size=4 * MIB, max_block_size=4 * MIB,
                                                    max_single_get_size=32 * MIB)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tls = ensure_tls_files(Path(tmp) / "tls")
        with Azurite(Path(tmp) / "azurite", tls) as azurite, \
                BlobFront(azurite.endpoint("blob", "").rstrip("/"), tls, accounts=azurite.all_accounts()) as front:
            direct = _client(azurite.connection_string(), tls.ca_bundle)
            proxied = _client(front.connection_string(DEV_ACCOUNT), tls.ca_bundle)
            container = f"bench-{uuid.uuid4().hex[:8]}"
            direct.create_container(container)
            direct.get_blob_client(container, "probe").upload_blob(b"x")
            rows: list[tuple[str, float, float]] = []
            for label, path in (("HEAD blob (Get Blob Properties)", "probe"),):
                rows.append((label,
                             _median_ms(direct.get_blob_client(container, path).get_blob_properties),
                             _median_ms(proxied.get_blob_client(container, path).get_blob_properties)))
            counter = iter(range(10**9))

            def put(client: BlobServiceClient) -> Callable[[], object]:
                return lambda: client.get_blob_client(container, f"small-{next(counter)}").upload_blob(b"k" * 1024)

            rows.append(("Put Blob 1 KiB (new blob)", _median_ms(put(direct)), _median_ms(put(proxied))))
            front.admin.set_container_policy(DEV_ACCOUNT, container, 1)
            rows.append(("Put Blob 1 KiB, container under a policy", _median_ms(put(direct)),
                         _median_ms(put(proxied))))
            print(f"Blob front overhead (median of {ROUNDS}, ms)     direct   front")
            for label, a, b in rows:
                print(f"  {label:<42} {a:6.2f}  {b:6.2f}")
            data = os.urandom(24 * MIB)
            for name, client in (("direct", direct), ("front", proxied)):
                blob = client.get_blob_client(container, f"bulk-{name}")
                started = time.perf_counter()
                blob.upload_blob(data)
                up = time.perf_counter() - started
                started = time.perf_counter()
                assert blob.download_blob().readall() == data
                down = time.perf_counter() - started
                print(f"  24 MiB {name:<6}: up {24 / up:6.0f} MiB/s, down {24 / down:6.0f} MiB/s")


if __name__ == "__main__":
    main()
