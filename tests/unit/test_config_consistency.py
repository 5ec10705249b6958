"""The settings table, the docs, local.settings.example.json and the bindings agree, by name and by value.

(infra/ is checked against the same table in tests/infra: check_app_settings_match_the_code and
check_setting_defaults_match_the_code, where the Bicep is parsed.)
"""

import json
import re
from pathlib import Path

import pytest

from dr_core.kernel.schedule import Ncrontab
from dr_core.kernel.settings import POLL_QUEUE, SETTINGS, TIMER_SCHEDULES, WORK_QUEUE

ROOT = Path(__file__).resolve().parents[2]
AZURE_ONLY = {s.name for s in SETTINGS if s.name.startswith("AzureWebJobsStorage__")}
LOCAL_PLATFORM = {"FUNCTIONS_WORKER_RUNTIME"}


def test_docs_list_every_setting():
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


def _docs_table(heading: str | None) -> dict[str, list[str]]:
    """The rows of the table under ``heading`` (None: the settings table on top) in docs/configuration.md:
    first cell (unquoted) -> the others."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = (text if heading is None else text.split(heading, 1)[1]).split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 2:
            rows[cells[0].strip("`").split("`")[0]] = cells[1:]
    return rows


def test_docs_give_every_default_by_value():
    documented = _docs_table(None)
    for spec in SETTINGS:
        cell = documented[spec.name][0]
        if spec.default is None:
            # No code default: none, empty, required, or a value derived from another setting.
            assert cell in ("–", "empty", "**required**") or "{" in cell, (spec.name, cell)
        else:
            assert cell == (f"`{spec.default}`" if spec.default else "empty"), (spec.name, cell, spec.default)


def test_fixed_timer_schedules_are_declared_once_and_documented(function_metadata):
    bindings = {name: json.loads(meta)["bindings"][0] for name, meta in function_metadata.items()}
    timers = {name for name, b in bindings.items() if b["type"] == "timerTrigger"}
    assert timers == set(TIMER_SCHEDULES) | {"plan_scheduled_backups"}
    documented = _docs_table("## Schedules")
    for name, schedule in TIMER_SCHEDULES.items():
        assert bindings[name]["schedule"] == schedule
        assert documented[name][0] == f"`{schedule}`", name
        Ncrontab.parse(schedule, including_seconds=True)


@pytest.mark.parametrize("spec", [s for s in SETTINGS if s.minimum is not None], ids=lambda s: s.name)
def test_whole_number_defaults_are_within_their_range(spec):
    assert spec.default is not None and spec.minimum is not None and spec.maximum is not None
    assert spec.minimum <= int(spec.default) <= spec.maximum


def test_local_settings_example_agrees_with_the_code():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    names = {s.name for s in SETTINGS}
    assert set(values) - names - LOCAL_PLATFORM == set(), "example sets settings the code never reads"
    assert names - AZURE_ONLY - set(values) == set(), "example lacks settings the code reads"


def test_host_json_queue_settings():
    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "base64"  # matches TextBase64EncodePolicy in dr_core.azure.clients
    assert queues["maxDequeueCount"] >= 3
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"


def test_bindings(function_metadata):
    by_name = {name: json.loads(meta) for name, meta in function_metadata.items()}
    timer = by_name["plan_scheduled_backups"]["bindings"][0]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "%BACKUP_SCHEDULE%"
    for function, name in (("work_on_job", WORK_QUEUE), ("poll_job", POLL_QUEUE)):
        queue = by_name[function]["bindings"][0]
        assert queue["queueName"] == name and queue["connection"] == "AzureWebJobsStorage"
    for http_fn in ("start_backup", "get_operation", "get_status", "dashboard"):
        assert by_name[http_fn]["bindings"][0]["authLevel"] == "FUNCTION"
    status = by_name["get_status"]["bindings"][0]
    assert status["route"] == "status" and status["methods"] == ["GET"]
    # The RPO monitor's timer has a fixed schedule in code (no app setting).
    rpo = by_name["check_rpo"]["bindings"][0]
    assert rpo["type"] == "timerTrigger" and rpo["schedule"] == TIMER_SCHEDULES["check_rpo"]
    page = by_name["dashboard"]["bindings"][0]
    assert (page["route"], page["methods"]) == ("dashboard", ["GET"])


def test_dr_core_never_imports_azure_functions():
    pattern = re.compile(r"^\s*(import|from)\s+azure\.functions\b", re.M)
    offenders = [p.name for p in (ROOT / "dr_core").rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders
