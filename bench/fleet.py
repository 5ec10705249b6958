"""A fleet of backups through the real path, under ARM's write throttling: time, POSTs, 429s, polls, status lag.

Runs the timer once over N instances (host stand-in + Azurite + APIM emulator + official SDKs),
with every operation taking D seconds, Retry-After R, and the emulator's write token bucket on
(ARM's documented 200 burst, 10 per second). Prints, side by side for each N:

- T / T_min: wall time from the timer firing to the last job terminal, against the physical
  minimum D + (N - burst) / refill (no schedule can start the last operation earlier);
- accepted POSTs (must equal N: no operation ever runs twice) and 429s;
- GETs per job against ceil(D / R) + 1;
- status lag: median (and p95) from an operation's end to its job being Succeeded (goal R + 2 s);
- jobs failed (goal: 0, none by throttling).

``python -m bench.fleet [--sizes 100,1000] [--duration 20] [--retry-after 5]``. Part of ``make bench``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BURST, REFILL = 200, 10.0
TEMPLATE = "apim-contoso-prod"


def fleet_seed(size: int) -> dict[str, Any]:
    from emulator.stack import EXAMPLE_SEED

    seed = json.loads(EXAMPLE_SEED.read_text())
    template = next(s for s in seed["services"] if s["name"] == TEMPLATE)
    services = []
    for i in range(size):
        svc = copy.deepcopy(template)
        svc["name"] = f"apim-fleet-{i:05d}"
        svc.pop("hostnameConfigurations", None)
        svc["tags"] = {"environment": "bench"}
        services.append(svc)
    seed["services"] = services
    return seed


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(size: int, *, duration: float, retry_after: int, timeout: float) -> dict[str, Any]:
    from azure.data.tables import TableClient

    from dr_core.azure.tables import job_from_entity
    from dr_core.context import reset_context
    from dr_core.jobs.ids import JobKind
    from dr_core.kernel.phases import JobState
    from emulator.funchost import FunctionsHost
    from emulator.stack import LocalAzure

    work = Path(tempfile.mkdtemp(prefix=f"apimdr-fleet-{size}-"))
    with LocalAzure(work, seed=fleet_seed(size), retry_after=retry_after, op_duration=duration) as local:
        assert local.apim and local.tls and local.azurite
        os.environ["REQUESTS_CA_BUNDLE"] = str(local.tls.ca_bundle)
        admin = local.apim.admin
        admin.set_write_throttling(True, burst=BURST, refill_per_second=REFILL)
        instances = [local.resource_id(f"apim-fleet-{i:05d}") for i in range(size)]
        settings = local.app_settings(instances, extra={
            "APIM_DR_STORAGE_ACCESS_TYPE": "AccessKey",
            "APIM_DR_BACKUP_STORAGE_KEY": local.azurite.all_accounts()[local.backup_account],
            "APIM_DR_MAX_POLL_DELAY_SECONDS": "300",
        })
        reset_context()
        host = FunctionsHost(PROJECT_ROOT, settings, run_timers=False, run_queues=True, http_port=None)
        host.start()
        table = TableClient.from_connection_string(local.azurite.connection_string(), "apimdrjobs")
        try:
            admin.clear_requests()
            started = time.time()
            record = host.fire_timer("plan_scheduled_backups")
            if not record.succeeded:
                raise RuntimeError(f"timer failed: {record.error}")
            jobs = []
            while time.time() - started < timeout:
                jobs = [job_from_entity(e) for e in table.list_entities()
                        if str(e["PartitionKey"]).startswith(JobKind.BACKUP.value)]
                if len(jobs) == size and all(j.state.terminal for j in jobs):
                    break
                time.sleep(1.0)
            elapsed = max((j.finished_at.timestamp() for j in jobs if j.finished_at), default=time.time()) - started
            requests_seen = admin.requests()
            operations = [o for o in admin.operations() if o.get("kind") == "backup"]
        finally:
            host.stop()
            reset_context()
    posts = [r for r in requests_seen if r["method"] == "POST" and r["path"].endswith("/backup")]
    polls = [r for r in requests_seen if r["method"] == "GET" and "/operationresults/" in r["path"]]
    # Every operation the emulator ran: a second backup of one service shows as more operations than N.
    by_service = {o["service"]: o for o in operations}
    lags = []
    for job in jobs:
        op = by_service.get(job.service_name)
        if op and job.finished_at and job.state is JobState.SUCCEEDED:
            lags.append(job.finished_at.timestamp() - (float(op["startedAt"]) + float(op["duration"])))
    minimum = duration + max(0, size - BURST) / REFILL
    return {
        "size": size,
        "terminal": sum(j.state.terminal for j in jobs),
        "failed": sum(j.state in (JobState.FAILED, JobState.TIMED_OUT) for j in jobs),
        "elapsed": elapsed,
        "minimum": minimum,
        "accepted_posts": sum(r["status"] == 202 for r in posts),
        "throttled": sum(r["status"] == 429 for r in requests_seen),
        "operations": len(operations),
        "gets_per_job": len(polls) / max(1, len(jobs)),
        "gets_bound": math.ceil(duration / retry_after) + 1,
        "lag_median": statistics.median(lags) if lags else float("nan"),
        "lag_p95": sorted(lags)[int(0.95 * (len(lags) - 1))] if lags else float("nan"),
    }


def main(sizes: tuple[int, ...] = (100, 1000), duration: float = 20.0, retry_after: int = 5) -> None:
    results = [run(n, duration=duration, retry_after=retry_after, timeout=max(600.0, n * 1.0)) for n in sizes]
    print(f"== fleet: one timer firing, operations {duration:.0f} s, Retry-After {retry_after} s, "
          f"ARM write bucket {BURST} + {REFILL:.0f}/s ==")
    for r in results:
        if r["terminal"] < r["size"]:
            print(f"  N = {r['size']}: only {r['terminal']} of {r['size']} jobs ended before the timeout; T below is "
                  "the last of those, not the run's end")
    header = ("N", "ended", "T (s)", "T_min (s)", "T/T_min", "POSTs 202", "429s", "ops run", "GETs/job", "bound",
              "lag med (s)", "lag p95 (s)", "failed")
    print("  " + "  ".join(f"{h:>11}" for h in header))
    for r in results:
        row = (r["size"], r["terminal"], f"{r['elapsed']:.1f}", f"{r['minimum']:.1f}",
               f"{r['elapsed'] / r['minimum']:.2f}",
               r["accepted_posts"], r["throttled"], r["operations"], f"{r['gets_per_job']:.2f}", r["gets_bound"],
               f"{r['lag_median']:.1f}", f"{r['lag_p95']:.1f}", r["failed"])
        print("  " + "  ".join(f"{v!s:>11}" for v in row))
    print(f"  goals: T/T_min <= 1.1 at N = 1000; POSTs 202 = N; status lag <= Retry-After + 2 = {retry_after + 2} s; "
          "0 failed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--retry-after", type=int, default=5)
    args = parser.parse_args()
    main(tuple(int(s) for s in args.sizes.split(",")), args.duration, args.retry_after)
