"""The status page end to end: real backups on local Azure, served by the host stand-in, read in headless Chromium.

What a person sees is checked in a real browser (Debian's chromium through Playwright): instance
names, RPO state, standby lag, drill RTO, a failure's remediation; hostile text from an ARM error
and from the settings shows as text and runs nothing; the page loads nothing but itself. Skipped,
with the reason, where Chromium or Playwright is missing (``make tools`` installs Chromium).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests

from dr_core.context import get_context
from dr_core.jobs.ids import JobKind
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.clock import iso
from dr_core.kernel.phases import JobState
from dr_core.ports import RecordKind, StoredRecord
from dr_core.records import record_key
from emulator import browser
from tests.e2e.conftest import E2E, PROD, STANDBY, V2, eventually

pytestmark = pytest.mark.e2e

HOSTILE_ERROR = "<script>document.title='pwned';window.__pwned=1</script>Restore \"failed\" & <b>stopped</b>"
HOSTILE_SETTING = "<script>window.__pwned=2</script>"


@pytest.fixture
def fleet(e2e: E2E) -> dict[str, str]:
    """prod (alias, synced standby) backs up, v2 cannot; plus the records the other features write."""
    e2e.configure([
        # A 48 h target: the timer's slot may be up to a day old, and prod must read OK at any hour.
        {"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY), "standbySync": True,
         "rpoHours": 48},
        e2e.rid(V2),
        HOSTILE_SETTING,  # an invalid entry: reported as a problem, the others still protected
    ])
    assert e2e.host is not None
    assert e2e.host.fire_timer("plan_scheduled_backups").outcome == "success"
    jobs = {j.service_name: j for j in e2e.wait_terminal([j.job_id for j in e2e.all_jobs()])}
    assert jobs[PROD].state is JobState.SUCCEEDED and jobs[V2].state is JobState.FAILED
    # The real standby sync: the backup's success restores it into the standby and records how that went.
    # (Writing that record by hand would race the sync, which writes the same record.)
    (sync,) = eventually(lambda: [j for j in e2e.all_jobs() if j.trigger == "standby-sync"])
    (synced,) = e2e.wait_terminal([sync.job_id])
    assert synced.state is JobState.SUCCEEDED, synced.error_message
    ctx = get_context()
    standby = eventually(lambda: _succeeded(ctx.records.get_record(RecordKind.STANDBY, record_key(e2e.rid(STANDBY)))))
    assert standby["jobId"] == sync.job_id and standby["backup"] == jobs[PROD].blob_name
    now = ctx.clock.now()
    backup_created = iso(jobs[PROD].slot)
    drill_target = e2e.rid(STANDBY).rsplit("/", 1)[0] + "/apim-contoso-drill"  # not in the seed: never called
    ctx.records.put_record(StoredRecord(RecordKind.DRILL, "restore-20261101T030000Z-apim-contoso-drill-0000abcd", {
        "instance": e2e.rid(PROD), "target": drill_target, "jobId": "restore-drill",
        "backup": jobs[PROD].blob_name, "backupCreatedAt": backup_created, "requestedAt": iso(now),
        "finishedAt": iso(now), "state": "passed", "rtoSeconds": 754, "rpoHoursAtDrill": 1.5,
        "verification": None, "error": None}))
    # A restore into the standby that failed with an error message an attacker could shape. Later than
    # the sync's success, which would otherwise supersede it (a failure fixed since is no open failure).
    slot = now.replace(microsecond=0) + timedelta(seconds=1)
    ctx.jobs.create(Job(
        job_id=f"restore-{slot:%Y%m%dT%H%M%SZ}-{STANDBY}-0000beef", kind=JobKind.RESTORE, instance=e2e.rid(STANDBY),
        service_name=STANDBY, state=JobState.FAILED, trigger=Trigger.HTTP, slot=slot, created_at=slot, updated_at=slot,
        deadline=slot + timedelta(hours=3), finished_at=slot, source_instance=e2e.rid(PROD),
        error_code="RestoreFailed", error_message=HOSTILE_ERROR, remediation="Check the standby's \"activity log\"."))
    key = next(iter(e2e.host.function_keys.values()))
    return {"url": f"{e2e.host.http_url}/api/dashboard", "key": key, "v2_remediation": jobs[V2].remediation or ""}


def _succeeded(record: StoredRecord | None) -> dict[str, Any] | None:
    return record.data if record is not None and record.data.get("state") == "Succeeded" else None


def test_dashboard_http_answers(e2e: E2E, fleet: dict[str, str]):
    url, key = fleet["url"], fleet["key"]
    page = requests.get(url, headers={"x-functions-key": key}, timeout=60)
    assert page.status_code == 200, page.text[:500]
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert page.text.startswith("<!doctype html>") and "<script>" not in page.text
    assert requests.get(f"{url}?code={key}", timeout=60).status_code == 200
    assert requests.get(url, timeout=60).status_code == 401
    assert requests.get(url, headers={"x-functions-key": "wrong"}, timeout=60).status_code == 401
    assert requests.post(url, headers={"x-functions-key": key}, timeout=60).status_code == 405
    assert requests.get(f"{url}/extra", headers={"x-functions-key": key}, timeout=60).status_code == 404


def test_dashboard_errors_are_json(e2e: E2E, fleet: dict[str, str]):
    e2e.configure([e2e.rid(PROD)], APIM_DR_BACKUP_STORAGE_ACCOUNT="")
    answer = requests.get(fleet["url"], headers={"x-functions-key": fleet["key"]}, timeout=60)
    assert answer.status_code == 503 and answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"]["code"] == "ConfigurationError"


def test_what_a_person_sees_in_chromium(e2e: E2E, fleet: dict[str, str], tmp_path):
    reason = browser.unavailable_reason()
    if reason:
        pytest.skip(reason)
    url = f"{fleet['url']}?code={fleet['key']}"
    with browser.open_page(url) as visit:
        page = visit.page
        text = page.inner_text("body").replace("\xa0", " ")  # no-break spaces between numbers and units
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        title = page.title()
        pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
        timeline = page.evaluate("() => getComputedStyle(document.querySelector('ol.tl')).display")
        marks = page.locator("tbody tr").last.locator("ol.tl li")
        mark_count = marks.count()
        classes = [marks.nth(i).get_attribute("class") for i in range(mark_count)]
        rows = page.locator("tbody tr th").all_inner_texts()

    # The header: the fleet's state in words, and the invalid settings entry as a problem.
    assert title.startswith("apim-dr status: ") and "pwned" not in title
    # v2 never backed up: a newly protected instance is at-risk for one RPO period (the monitor's grace).
    assert "! At risk: 1 of 2 instances" in text
    assert "Problems (1)" in text and "APIM_DR_INSTANCES[2]" in text
    # Each instance, most urgent first: v2 never backed up (at risk), prod ok.
    assert [r.split("\n")[0] for r in rows] == [V2, "prod"]
    assert "apim-contoso-prod" in text and "✓ OK" in text and "! At risk" in text
    assert "1 of 30 days with a restorable backup" in text and mark_count == 30
    assert classes.count("r") == 1 and classes.count("x") == 29 and "no backup: " in text
    assert STANDBY in text and "✓ lag " in text
    assert "✓ passed" in text and "RTO 12 min 34 s" in text and "RPO at drill 1.5 h" in text
    # Failures with what to do: v2's tier (from the emulator) and the hostile restore error, as text.
    assert "MethodNotAllowedInPricingTier" in text and fleet["v2_remediation"][:60] in text
    assert HOSTILE_ERROR in text and "What to do: Check the standby's \"activity log\"." in text
    assert HOSTILE_SETTING in text
    # Nothing ran, nothing else was fetched, and the inline style was allowed by its hash.
    assert pwned is None
    assert visit.requests == [url] and visit.blocked == []
    assert not [c for c in visit.console if c.startswith("error")], visit.console
    assert timeline == "flex"
    assert shot.stat().st_size > 10_000
