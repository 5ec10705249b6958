"""``make demo``: the real apim-dr flow on local Azure, printed as it happens.

1. Starts Azurite, the APIM management-plane emulator (seeded from emulator/seed.example.json),
   a webhook receiver, and the Functions host stand-in running function_app.py.
2. Fires the backup timer for four instances: a Standard and a Premium one that back up, a
   Developer one without a managed identity (fails with advice), and a StandardV2 one (a tier
   that cannot back up). Prints every job transition, then a table of jobs.
3. Restores the newest backup of the primary into its standby through the HTTP API, with its
   preflight report, and checks that the standby now has the primary's configuration.
4. Fires the drill timer: the newest backup of the primary is restored into its dedicated drill
   instance and verified against the backup's manifest (APIs, products, named values), with RTO
   and RPO; prints the drill history (GET /api/drills).
5. The RPO monitor: fires its timer and prints GET /api/status as the clock (the app's and the
   emulator's, moved together) passes 80 % and 100 % of the 26 h target, shows the breach
   announcements, then takes a new backup and shows the recovery announced at once.
6. Prints the status page's URL (``GET /api/dashboard``) and saves a screenshot of it.
7. Retention: moves the shared clock 38 days on and runs ``apim-dr prune --dry-run``: each backup
   with its decision and reason (the primary keeps its newest one: keepLast 1), nothing deleted, in
   the backup account and in the copy account alike.
8. A copy in a second region: a new backup of the primary is copied server-side to the second
   account (apimdrcopies, West Europe) when it succeeds, verified and catalogued; then the backup
   account's region has a storage outage, and the restore into the standby reads the copy, and says so.

Everything runs locally; nothing reaches Azure. Each run starts from scratch in a temporary folder.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ("apim-contoso-prod", "apim-contoso-premium", "apim-contoso-dev", "apim-contoso-v2")
STANDBY = "apim-contoso-dr"
DRILL = "apim-contoso-drill"


_ENDED = ("Succeeded", "Failed", "TimedOut", "Refused")


def _wait_job(location: str, headers: dict[str, str], *, show: bool = False,
              timeout: float = 60) -> dict[str, Any] | None:
    """Poll a job's Location until it ends; its last status, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = requests.get(location, headers=headers, timeout=30).json()
        if show:
            _print(f"    {status['state']:<10} elapsed {status['elapsedSeconds']:5.1f} s  polls {status['polls']}")
        if status["state"] in _ENDED:
            return status
        time.sleep(1.0 if show else 0.5)
    return None


def _print(text: str = "") -> None:
    print(text, flush=True)


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="    log: %(name)s %(levelname)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs' request lines (as python -m emulator.funchost)
    from emulator.funchost import FunctionsHost
    from emulator.stack import LocalAzure
    from emulator.webhook import Webhook

    workdir = Path(tempfile.mkdtemp(prefix="apim-dr-demo-"))
    hook = Webhook()
    # The blob front before Azurite performs Put Blob From URL (the copies, section 8) and plays storage outages.
    local = LocalAzure(workdir, retry_after=1, op_duration=3.0, blob_front=True)
    _print("== apim-dr demo: local Azure ==")
    local.start()
    assert local.azurite and local.apim and local.tls
    os.environ["REQUESTS_CA_BUNDLE"] = str(local.tls.ca_bundle)
    _print(f"  Azurite (blob/queue/table, HTTPS + OAuth)  {local.azurite.endpoint('blob')}")
    _print(f"  APIM management-plane emulator (ARM)      {local.apim.arm_url}")
    _print(f"  managed-identity endpoint                 {local.apim.identity_endpoint}")
    _print(f"  webhook receiver (announcements)          {hook.url}")
    instances: list[Any] = [{"resourceId": local.resource_id(INSTANCES[0]), "alias": "prod",
                             "standby": local.resource_id(STANDBY), "drillTarget": local.resource_id(DRILL),
                             "keepLast": 1}]
    instances += [local.resource_id(name) for name in INSTANCES[1:]]
    assert local.copy_account is not None
    local.create_containers(local.copy_account, ["apim-backups"])  # as infra/ creates them
    settings = local.app_settings(instances, extra={"APIM_DR_WEBHOOK_URL": hook.url,
                                                    "APIM_DR_MAX_POLL_DELAY_SECONDS": "2",
                                                    "APIM_DR_ATTEMPT_BACKOFF_SECONDS": "2",
                                                    **local.copy_settings()})
    host = FunctionsHost(PROJECT_ROOT, settings, run_queues=True, http_port=0)
    host.start()
    key = next(iter(host.function_keys.values()))
    _print(f"  Functions host stand-in running function_app.py, HTTP at {host.http_url}/api")
    try:
        code = _run(local, host, key, hook)
        _show_dashboard(host, key)
        # Last: it moves the clock by weeks, which would change what the status page shows.
        if code == 0 and not _retention(local):
            code = 1
        if code == 0 and not _copy(local, host, key):
            code = 1
        if code == 0:
            _print()
            _print("Done. Everything above ran on local stand-ins through the official Azure SDKs.")
    finally:
        host.stop()
        local.stop()
        hook.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return code


def _run(local: Any, host: Any, key: str, hook: Any) -> int:
    from dr_core.context import get_context
    from dr_core.jobs import Job, JobKind, JobState

    _print()
    _print("== 1. the backup timer fires (BACKUP_SCHEDULE) ==")
    # APIM's backup has no SLA: this time the first operation of prod's backup fails with an internal error.
    local.apim.admin.set_fault("op_failure", on="backup", service=INSTANCES[0], status=500, count=1,
                               code="InternalServerError", message="Encountered an internal server error.")
    _print(f"  (the emulator will fail the first backup operation of {INSTANCES[0]} with InternalServerError)")
    started = time.monotonic()
    record = host.fire_timer("plan_scheduled_backups")
    if not record.succeeded:
        _print(f"  timer failed: {record.error}")
        return 1
    context = get_context()

    def jobs() -> list[Job]:
        return sorted(context.jobs.recent_jobs([JobKind.BACKUP], days=1, now=context.clock.now()),
                      key=lambda j: j.service_name)

    seen: dict[str, str] = {}
    while True:
        current = jobs()
        for job in current:
            label = job.state.value + (f" (waiting: {job.wait_reason})" if job.wait_reason else "")
            if seen.get(job.job_id) != label:
                seen[job.job_id] = label
                _print(f"  {time.monotonic() - started:5.1f} s  {job.service_name:<22} {label}")
        if current and all(j.state.terminal for j in current):
            break
        if time.monotonic() - started > 120:
            _print("  gave up waiting after 120 s")
            return 1
        time.sleep(0.25)

    _print()
    _print("== 2. jobs ==")
    rows = []
    for job in jobs():
        duration = f"{job.duration_seconds:.1f} s" if job.duration_seconds is not None else "-"
        outcome = job.blob_name if job.state is JobState.SUCCEEDED else f"({job.error_code}) {job.remediation}"
        rows.append([job.service_name, job.sku or "-", job.state.value, duration, str(job.polls),
                     outcome[:110]])
    _print(_table(rows, ["instance", "tier", "state", "duration", "polls", "backup blob / what to do"]))
    for job in jobs():
        if len(job.attempts) > 1:
            _print(f"  {job.service_name} took {len(job.attempts)} operations (one job; a blob name each):")
            for attempt in job.attempts:
                error = f" ({attempt.error_code}, transient: tried again)" if attempt.error_code else ""
                _print(f"    attempt {attempt.number}: {attempt.outcome.value}{error}")
    _print()
    _print(f"  announcements received by the webhook: {len(hook.received)}")
    for item in hook.received:
        _print(f"    - {item['text'].splitlines()[0]}")
    posts = [r for r in local.apim.admin.requests(method="POST") if r["path"].endswith("/backup")]
    operations = sum(max(1, len(j.attempts)) for j in jobs())
    _print(f"  POST .../backup requests seen by ARM: {len(posts)} (one per operation: {operations})")

    _print()
    _print("== 3. incident: restore the newest backup of apim-contoso-prod into the standby ==")
    api = host.http_url + "/api"
    headers = {"x-functions-key": key}
    response = requests.post(f"{api}/restores", json={"target": STANDBY}, headers=headers, timeout=60)
    body = response.json()
    for check in body["plan"]["preflight"]:
        _print(f"  preflight [{check['outcome']:>4}] {check['name']}: {check['message']}")
    if response.status_code != 202:
        _print(f"  restore refused: HTTP {response.status_code} {body.get('error')}")
        return 1
    location = response.headers["Location"]
    _print(f"  HTTP 202 Accepted, Location: {location}")
    status = _wait_job(location, headers, show=True, timeout=300)
    if status is None:
        _print("  gave up waiting for the restore after 300 s")
        return 1
    prod = local.apim.admin.service("apim-contoso-prod")
    standby = local.apim.admin.service(STANDBY)
    keys = ("apis", "products", "subscriptions", "users", "namedValues")
    same = all(prod["configuration"].get(k) == standby["configuration"].get(k) for k in keys)
    _print(f"  restore {status['state']} in {status['durationSeconds']} s; standby configuration equals the "
           f"primary's: {same}; standby hostnames kept: "
           f"{[h['hostName'] for h in standby.get('hostnameConfigurations') or []]}")
    if status["state"] != "Succeeded" or not same:
        return 1
    if _drill(host, api, headers) != "passed":
        return 1
    if not _rpo(local, host, api, headers, hook):
        return 1
    return 0


def _rpo(local: Any, host: Any, api: str, headers: dict[str, str], hook: Any) -> bool:
    from dr_core.context import reset_context
    from emulator.apim import EmulatorAdmin
    from emulator.clock import LinkedClock

    _print()
    _print("== 5. RPO monitor (target 26 h; at-risk from 80 %) ==")
    # From here on the app's clock follows the emulator's, so moving one moves both.
    reset_context(clock=LinkedClock(EmulatorAdmin(local.apim.arm_url, local.apim.ca_bundle)))
    hook.received.clear()

    def show(title: str) -> None:
        _print(f"  {title}: timer check_rpo fires, then GET /api/status")
        record = host.fire_timer("check_rpo")
        if not record.succeeded:
            _print(f"    timer failed: {record.error}")
        body = requests.get(f"{api}/status", headers=headers, timeout=60).json()
        rows = []
        for view in body["instances"]:
            rpo = view["rpo"]
            newest = rpo["newestRestorable"]
            age = f"{newest['ageHours']:.1f} h" if newest else "none"
            rows.append([view["serviceName"], rpo["state"], f"{age} / {rpo['targetHours']} h",
                         str(len(view["openFailures"])), (rpo.get("reason") or "")[:70]])
        table = _table(rows, ["instance", "RPO", "newest restorable / target", "open failures", "why"])
        for line in table.splitlines():
            _print("    " + line.rstrip())

    def announced() -> None:
        for item in hook.received:
            event = item.get("apimDr", {}).get("event")
            if event:
                _print(f"    webhook: {event}: {item['text'].splitlines()[0]}")
        hook.received.clear()

    show("now")
    local.apim.admin.advance_clock(22 * 3600)
    show("22 h later")
    local.apim.admin.advance_clock(5 * 3600)
    show("27 h after the backups")
    announced()
    local.apim.admin.advance_clock(15 * 60)
    show("15 minutes later (still breached: nothing new to announce)")
    announced()
    _print("  a new backup of apim-contoso-prod (POST /api/backups); the worker re-checks its RPO when it succeeds:")
    response = requests.post(f"{api}/backups", json={"instance": "prod"}, headers=headers, timeout=60)
    location = response.headers["Location"]
    if _wait_job(location, headers) is None:
        _print("  gave up waiting after 60 s")
        return False
    time.sleep(1.0)  # the follower runs right after the job's last step
    announced()
    show("after the new backup")
    return True


def _show_dashboard(host: Any, key: str) -> None:
    """The status page as it stands after the run: its URL, and a full-page screenshot when Chromium is here."""
    from emulator import browser

    url = f"{host.http_url}/api/dashboard?code={key}"
    _print()
    _print("== 6. the status page (GET /api/dashboard) ==")
    _print(f"  {url}  (served until the demo ends)")
    reason = browser.unavailable_reason()
    if reason:
        _print(f"  no screenshot: {reason}")
        return
    path = PROJECT_ROOT / ".local" / "demo" / "dashboard.png"
    try:
        browser.screenshot(url, path)
    except Exception as e:  # a screenshot is a bonus: never fail the demo over it
        _print(f"  no screenshot: {type(e).__name__}: {str(e)[:200]}")
        return
    _print(f"  screenshot: {path}")


def _retention(local: Any) -> bool:
    from dr_core import cli

    _print()
    _print("== 7. retention: 38 days later, a prune dry run (apim-contoso-prod keeps its newest: keepLast 1) ==")
    local.apim.admin.advance_clock(38 * 86400)
    _print("  the emulator's clock, which the app shares, moves 38 days on; then `apim-dr prune --dry-run`:")
    out = io.StringIO()
    code = cli.main(["prune", "--dry-run"], stdout=out)
    for line in out.getvalue().splitlines():
        _print(f"    {line}")
    return code == 0


def _copy(local: Any, host: Any, key: str) -> bool:
    """A backup copied to the second account, then a storage outage of the first: the restore reads the copy."""
    from dr_core.context import get_context

    api, headers = host.http_url + "/api", {"x-functions-key": key}
    primary, copies = local.backup_account, local.copy_account
    _print()
    _print(f"== 8. a copy in a second region: {copies} ({local.account_location(copies)}) beside {primary} "
           f"({local.account_location(primary)}) ==")
    _print("  a new backup of apim-contoso-prod (POST /api/backups); when it succeeds the worker copies it:")
    response = requests.post(f"{api}/backups", json={"instance": "prod"}, headers=headers, timeout=60)
    status = _wait_job(response.headers["Location"], headers)
    if status is None or status["state"] != "Succeeded":
        _print(f"  the backup did not succeed: {status}")
        return False
    blob = status["backup"]["blobName"]
    record = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = get_context().copy_records().all()
        record = next((r.value for r in found if r.value.last_copied and r.value.last_copied.blob_name == blob), None)
        if record is not None:
            break
        time.sleep(0.5)
    if record is None or record.last_copied is None:
        _print(f"  no verified copy of {blob} within 30 s")
        return False
    last = record.last_copied
    puts = [r for r in local.front.admin.requests(operation="PutBlobFromURL") if r["path"].endswith(blob)]
    _print(f"    {blob}")
    _print(f"    copied with Put Blob From URL ({len(puts)} request, the source read by {copies} with the app's "
           "token: no data through the app), verified by")
    _print(f"    {last.checksum}: {last.size_bytes} bytes, Content-MD5 {last.content_md5} on both sides; then "
           "catalogued with the original's index tags")
    body = requests.get(f"{api}/status", params={"service": "prod"}, headers=headers, timeout=60).json()
    copy = body["instances"][0]["copy"]
    _print(f"  GET /api/status: copy in {copy['account']}, lag {copy['lagHours']} h, newest backup not copied yet: "
           f"{copy['behind']}")
    _print(f"  storage outage in {local.account_location(primary)}: {primary} stops answering the app and APIM alike")
    local.storage_outage(primary)
    try:
        response = requests.post(f"{api}/restores", json={"target": STANDBY}, headers=headers, timeout=120)
        body = response.json()
        for check in body["plan"]["preflight"]:
            if check["name"] in ("backup-exists", "backup-account-cors-disabled"):
                _print(f"  preflight [{check['outcome']:>4}] {check['name']}: {check['message'][:300]}")
        if response.status_code != 202:
            _print(f"  restore refused: HTTP {response.status_code} {body.get('error')}")
            return False
        _print(f"  HTTP 202: the restore body names {body['plan']['storage']['account']} "
               f"(copy: {body['plan']['storage']['copy']})")
        status = _wait_job(response.headers["Location"], headers, timeout=120)
        operations = [op for op in local.apim.admin.operations(service=STANDBY) if op["kind"] == "restore"]
        account = operations[-1]["parameters"]["storageAccount"] if operations else None
        _print(f"  restore {status['state'] if status else 'did not end'}; APIM read the backup from {account}")
        return bool(status and status["state"] == "Succeeded" and account == copies)
    finally:
        local.storage_outage(primary, down=False)
        _print(f"  the outage ends: {primary} answers again")


def _drill(host: Any, api: str, headers: dict[str, str]) -> str:
    _print()
    _print(f"== 4. restore drill: the drill timer restores the newest backup into {DRILL} and verifies it ==")
    record = host.fire_timer("run_drills")
    if not record.succeeded:
        _print(f"  drill timer failed: {record.error}")
        return "failed"
    started = time.monotonic()
    while True:
        history = requests.get(f"{api}/drills", params={"service": "prod"}, headers=headers, timeout=30).json()
        drill = (history.get("drills") or [{}])[0]
        _print(f"    {drill.get('state', 'none'):<8} elapsed {time.monotonic() - started:5.1f} s")
        if drill.get("state") in ("passed", "failed", None) or time.monotonic() - started > 60:
            break
        time.sleep(1.0)
    if not drill:
        _print("  no drill started")
        return "failed"
    _print(f"  drill {drill['jobId']}: {drill['state'].upper()}, backup {drill['backup']}")
    _print(f"  RTO (restore requested -> Succeeded) {drill['rtoSeconds']} s; RPO at drill time "
           f"{drill['rpoHoursAtDrill']} h")
    for collection, part in (drill.get("verification") or {}).items():
        _print(f"  {collection:<12} expected {len(part['expected'])}, found {len(part['found'])}, missing "
               f"{part['missing'] or '-'}, unexpected {part['unexpected'] or '-'}")
    if drill.get("error"):
        _print(f"  error: ({drill['error']['code']}) {drill['error']['message']}")
    return str(drill["state"])


if __name__ == "__main__":
    sys.exit(main())
