"""The status workbook (infra/monitor/status-workbook.*) reads only log lines the code writes, with their fields.

``check_status_workbook`` (bicep_model) checks the workbook against ``LOG_LINE_FIELDS``; these tests tie
that table to the code: the APIMDR_JOB fields are what ``notify.log_transition`` logs, and every prefix
is one dr_core writes.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest

from dr_core.jobs.events import LOG_PREFIX, log_transition
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import ArmError
from tests.infra.bicep_model import LOG_LINE_FIELDS, ROOT, Infra, workbook_fields, workbook_queries
from tests.unit.fakes import T0, settings

_WRITTEN = re.compile(r"""["'](APIMDR_[A-Z]+) """)


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.from_disk()


def written_prefixes() -> set[str]:
    """Every ``APIMDR_X `` string literal in dr_core: the structured log lines the app writes."""
    return {m.group(1) for path in (ROOT / "dr_core").rglob("*.py") for m in _WRITTEN.finditer(path.read_text())}


def test_the_job_line_fields_are_what_log_transition_logs(caplog: pytest.LogCaptureFixture):
    job = Job.new_backup(settings(), settings().instances[0], T0, trigger=Trigger.SCHEDULE, now=T0)
    job.begin_start(T0)
    job.fail(T0 + timedelta(seconds=5), ArmError("InvalidParameters", "no identity", 400))
    with caplog.at_level(logging.INFO, logger="apim_dr.jobs"):
        log_transition(job, now=T0 + timedelta(seconds=5))
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith(LOG_PREFIX))
    record = json.loads(line[len(LOG_PREFIX):])
    assert set(record) == LOG_LINE_FIELDS["APIMDR_JOB"]
    assert record["remediation"] and record["errorMessage"] == "no identity"  # what the workbook shows


def test_every_log_line_the_workbook_knows_is_written():
    written = written_prefixes()
    assert "APIMDR_JOB" in written, "the scan of dr_core found nothing"
    unknown = set(LOG_LINE_FIELDS) - written
    assert not unknown, f"no code writes {sorted(unknown)}"


def test_the_workbook_shows_what_the_status_page_shows(infra: Infra):
    read: dict[str, set[str]] = {}
    for _, content in workbook_queries(infra):
        for prefix, fields in workbook_fields(content["query"]).items():
            read.setdefault(prefix, set()).update(fields)
    assert {"instance", "kind", "state", "errorCode", "errorMessage", "remediation"} <= read["APIMDR_JOB"]
    assert {"instance", "state", "targetHours", "newestRestorable.createdAt"} <= read["APIMDR_RPO"]
    assert {"standby", "lastSucceeded.backupCreatedAt", "error.remediation"} <= read["APIMDR_STANDBY"]
    assert {"instance", "state", "rtoSeconds", "rpoHoursAtDrill"} <= read["APIMDR_DRILL"]
    titles = " ".join(str(c.get("title")) for _, c in workbook_queries(infra))
    for words in ("RPO state", "Backups per day", "Backups per instance per day", "Open failures", "Standby",
                  "drills"):
        assert words in titles


def test_workbook_fields_reads_nested_paths():
    query = ('traces | where message startswith "APIMDR_RPO " | extend r = parse_json(substring(message, '
             'strlen("APIMDR_RPO "))) | project a = r.state, b = r.newestRestorable.createdAt, c = rr.other')
    assert workbook_fields(query) == {"APIMDR_RPO": {"state", "newestRestorable.createdAt"}}


@pytest.mark.parametrize(("prefix", "module"), [("APIMDR_STANDBY", "dr_core.standby.sync"),
                                               ("APIMDR_DRILL", "dr_core.drills.drills")])
def test_the_standby_and_drill_line_fields_are_what_the_code_logs(prefix: str, module: str):
    import importlib

    code = importlib.import_module(module)
    assert f"{prefix} " == code.LOG_PREFIX
    assert set(code.LOG_FIELDS) == {f for f in LOG_LINE_FIELDS[prefix] if "." not in f}
