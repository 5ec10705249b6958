"""The settings table, the docs, local.settings.example.json and the bindings agree."""

import json
import re
from pathlib import Path

from dr_core.kernel.settings import POLL_QUEUE, SETTINGS, WORK_QUEUE

ROOT = Path(__file__).resolve().parents[2]
AZURE_ONLY = {s.name for s in SETTINGS if s.name.startswith("AzureWebJobsStorage__")}
LOCAL_PLATFORM = {"FUNCTIONS_WORKER_RUNTIME"}


def test_docs_list_every_setting():
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"docs/configuration.md lacks {missing}"


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
    assert rpo["type"] == "timerTrigger" and rpo["schedule"] == "0 */15 * * * *"
    page = by_name["dashboard"]["bindings"][0]
    assert (page["route"], page["methods"]) == ("dashboard", ["GET"])


def test_dr_core_never_imports_azure_functions():
    pattern = re.compile(r"^\s*(import|from)\s+azure\.functions\b", re.M)
    offenders = [p.name for p in (ROOT / "dr_core").rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders
