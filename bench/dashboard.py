"""The status page for a large fleet: render time and page size of ``render_dashboard`` for 1,000 instances.

The document is synthetic but full: 30 days of backups per instance (some missed, some not
restorable), a standby and a drill for half of them, and open failures with long remediations
for one in ten. Figures: median and worst of N renders, the page's size, and its gzip size
(what a front end that compresses would send; the Functions host itself does not).
"""

from __future__ import annotations

import gzip
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dr_core.kernel.clock import iso
from dr_core.posture.dashboard import render_dashboard

SUB = "00000000-0000-0000-0000-0000000000bb"
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
STATES = ("ok", "ok", "ok", "ok", "ok", "ok", "at-risk", "breached", "unknown", "ok")


def _rid(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ApiManagement/service/{name}"


def fleet(instances: int = 1000) -> dict[str, Any]:
    """A status document shaped like ``GET /api/status`` for ``instances`` instances."""
    items = []
    for n in range(instances):
        name = f"apim-fleet-{n:05d}"
        backups = [{"blobName": f"{name}/{d}", "createdAt": iso(NOW.replace(hour=2) - timedelta(days=d)),
                    "sku": "Standard", "sizeBytes": 1_000_000, "restorable": d < 29,
                    "notRestorableBecause": None if d < 29 else "expires within the configured margin"}
                   for d in range(30) if (n + d) % 11]
        item: dict[str, Any] = {
            "instance": _rid(name), "serviceName": name, "alias": f"team-{n}" if n % 3 == 0 else None,
            "rpo": {"targetHours": 26, "state": STATES[n % len(STATES)], "since": iso(NOW - timedelta(days=2)),
                    "newestRestorable": {"blobName": "b", "createdAt": iso(NOW - timedelta(hours=7)),
                                         "ageHours": 7.0}},
            "standby": None, "lastDrill": None, "openFailures": [], "backups": backups,
        }
        if n % 2 == 0:
            item["standby"] = {"instance": _rid(f"{name}-dr"), "sync": True, "lagHours": 7.5, "state": "Succeeded",
                               "lastSucceeded": {"backup": "b", "backupCreatedAt": iso(NOW - timedelta(hours=7)),
                                                 "finishedAt": iso(NOW - timedelta(hours=6))}, "error": None}
            item["lastDrill"] = {"jobId": f"restore-{n}", "state": "passed", "rtoSeconds": 1800 + n,
                                 "rpoHoursAtDrill": 4.0, "finishedAt": iso(NOW - timedelta(days=3)),
                                 "target": _rid(f"{name}-drill")}
        if n % 10 == 7:
            item["openFailures"] = [{
                "jobId": f"backup-20270201T020000Z-{name}-1234abcd", "kind": "backup", "state": "Failed",
                "errorCode": "InvalidParameters", "message": "System assigned managed identity is not enabled.",
                "remediation": "Enable the managed identity on the APIM instance and grant it 'Storage Blob Data "
                               "Contributor' on the backup account.", "at": iso(NOW - timedelta(hours=7))}]
        items.append(item)
    return {"generatedAt": iso(NOW), "instances": items, "problems": []}


def main(instances: int = 1000, runs: int = 7) -> None:
    document = fleet(instances)
    times = []
    page = ""
    for _ in range(runs):
        start = time.perf_counter()
        page = render_dashboard(document, now=NOW)
        times.append(time.perf_counter() - start)
    body = page.encode()
    print(f"== status page, {instances:,} instances, {runs} renders ==")
    print(f"  render_dashboard: median {statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms")
    print(f"  page: {len(body) / 1e6:.2f} MB ({len(body) / instances / 1000:.2f} kB per instance), "
          f"gzip {len(gzip.compress(body)) / 1e6:.2f} MB")
    _browser_figures(body)


def _browser_figures(body: bytes) -> None:
    """How long headless Chromium takes to load the page: navigation timings (from a file: no network in them)."""
    from emulator import browser

    reason = browser.unavailable_reason()
    if reason:
        print(f"  Chromium: skipped ({reason})")
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dashboard.html"
        path.write_bytes(body)
        with browser.open_page(path.as_uri()) as visit:
            timing = visit.page.evaluate(
                "() => { const t = performance.getEntriesByType('navigation')[0];"
                " return [t.domContentLoadedEventEnd, t.loadEventEnd]; }")
    print(f"  Chromium: DOM ready {timing[0]:.0f} ms, loaded {timing[1]:.0f} ms after navigation start")


if __name__ == "__main__":
    main()
