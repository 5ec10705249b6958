"""ARM calls per backup, restore start latency and end-to-visible latency, on local Azure.

Runs the real path (host stand-in + Azurite + APIM emulator + official SDKs) with the emulator's
Retry-After at 1 s, so the figures describe apim-dr's own overhead, not APIM's pace:

- ARM calls per backup: every request the emulator saw for one on-demand backup, by kind;
- restore request -> ARM POST: wall time from the HTTP request to the POST reaching the emulator
  (validation, ARM reads and the catalog query of the preflight, job row, queue hop);
- operation end -> Succeeded visible: from the emulated operation's due end to the job row saying so
  (Retry-After spacing plus queue pickup latency, host.json maxPollingInterval 5 s).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main(runs: int = 3) -> None:
    from dr_core.context import get_context, reset_context
    from emulator.funchost import FunctionsHost
    from emulator.stack import LocalAzure

    work = Path(tempfile.mkdtemp(prefix="apimdr-bench-lro-"))
    with LocalAzure(work, retry_after=1, op_duration=3.0) as local:
        assert local.apim and local.tls
        os.environ["REQUESTS_CA_BUNDLE"] = str(local.tls.ca_bundle)
        prod, standby = local.resource_id("apim-contoso-prod"), local.resource_id("apim-contoso-dr")
        settings = local.app_settings([{"resourceId": prod, "alias": "prod", "standby": standby}],
                                      extra={"APIM_DR_MAX_POLL_DELAY_SECONDS": "2"})
        host = FunctionsHost(PROJECT_ROOT, settings, run_queues=True, http_port=0)
        host.start()
        api, headers = f"{host.http_url}/api", {"x-functions-key": next(iter(host.function_keys.values()))}
        admin = local.apim.admin
        calls: list[dict[str, int]] = []
        to_post: list[float] = []
        visible: list[float] = []
        try:
            for _ in range(runs):
                admin.clear_requests()
                job_id = requests.post(f"{api}/backups", json={"instance": "prod"}, headers=headers,
                                       timeout=60).json()["id"]
                _wait(get_context, job_id)
                kinds: dict[str, int] = {}
                for r in admin.requests():
                    kind = _kind(r)
                    kinds[kind] = kinds.get(kind, 0) + 1
                calls.append(kinds)

                admin.clear_requests()
                started = time.time()
                response = requests.post(f"{api}/restores", json={"target": "apim-contoso-dr"}, headers=headers,
                                         timeout=60)
                assert response.status_code == 202, response.text
                job = _wait(get_context, response.json()["operation"]["id"])
                post = next(r for r in admin.requests(method="POST") if r["path"].endswith("/restore"))
                to_post.append(_ts(post["time"]) - started)
                (op,) = [o for o in admin.operations() if o.get("kind") == "restore"][-1:]
                ends = float(op["startedAt"]) + float(op["duration"])
                visible.append(job.finished_at.timestamp() - ends)
        finally:
            host.stop()
            reset_context()
    print(f"== long-running operations on local Azure, {runs} runs (Retry-After 1 s, operations 3 s) ==")
    for i, kinds in enumerate(calls, 1):
        summary = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        arm = sum(v for k, v in kinds.items() if k != "token")
        print(f"  backup {i}: {arm} ARM calls ({summary})")
    print(f"  restore request -> ARM POST: median {statistics.median(to_post):.3f} s, max {max(to_post):.3f} s")
    print(f"  restore end -> Succeeded visible: median {statistics.median(visible):.2f} s, "
          f"max {max(visible):.2f} s")
    print("    (bounded by Retry-After + host.json maxPollingInterval: with real APIM's Retry-After 60 s, "
          "at most ~65 s)")


def _kind(request: dict[str, Any]) -> str:
    """What an ARM request the emulator saw was, for the per-backup count."""
    path = request["path"]
    if path.startswith("/msi/"):
        return "token"
    if request["method"] == "POST":
        return "POST backup"
    if "/operationresults/" in path:
        return "GET operationresults"
    if path.split("?", 1)[0].rstrip("/").endswith(("/apis", "/products", "/namedValues")):
        return "GET lists (manifest, after the job)"  # may or may not be seen yet: a follower
    return "GET service"


def _wait(get_context: Any, job_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_context().jobs.get(job_id)
        if job is not None and job.state.terminal:
            return job
        time.sleep(0.05)
    raise TimeoutError(job_id)


if __name__ == "__main__":
    main()
