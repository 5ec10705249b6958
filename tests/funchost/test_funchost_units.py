"""Host stand-in pieces that need no Azurite: host.json, routes, settings, connections, metadata."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import requests
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from emulator.funchost import (
    CrashPoint,
    FunctionInErrorError,
    FunctionsHost,
    HostAlreadyRunningError,
    HostJson,
    RouteTemplate,
    UnresolvedSettingError,
    decode_message,
    encode_message,
    load_host_json,
    load_local_settings,
    parse_timespan,
    resolve_queue_connection,
)
from emulator.funchost.connections import ConnectionNotConfiguredError
from emulator.funchost.settings import resolve_expression

SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"
OFFLINE_SETTINGS = {
    "SampleStorage": "UseDevelopmentStorage=true",
    "SAMPLE_QUEUE": "offline-queue",
    "SAMPLE_OUT_QUEUE": "offline-out",
    "SAMPLE_SCHEDULE": "*/5 * * * * *",
    "SAMPLE_MONITORED_SCHEDULE": "0 0 2 * * *",
    "SAMPLE_RECORD_FILE": "/dev/null",
}


def offline_host(**kwargs: object) -> FunctionsHost:
    """A host that indexes the sample app but opens no queue or socket."""
    options: dict[str, object] = {"run_queues": False, "http_port": None, **kwargs}
    settings = options.pop("settings", OFFLINE_SETTINGS)
    return FunctionsHost(SAMPLE_APP, settings, **options)  # type: ignore[arg-type]


def test_timespans() -> None:
    assert parse_timespan("00:00:30") == 30
    assert parse_timespan("00:00:00.500") == 0.5
    assert parse_timespan("1.02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    with pytest.raises(ValueError):
        parse_timespan("30s")


def test_host_json_defaults_and_sample_values() -> None:
    defaults = HostJson.from_dict({}).queues
    assert (defaults.message_encoding, defaults.batch_size, defaults.new_batch_threshold) == ("base64", 16, 8)
    assert (defaults.max_dequeue_count, defaults.visibility_timeout, defaults.max_polling_interval) == (5, 0, 60)
    sample = load_host_json(SAMPLE_APP)
    assert sample.queues.max_dequeue_count == 3
    assert sample.queues.visibility_timeout == 1
    assert sample.queues.max_polling_interval == 0.5
    assert sample.queues.batch_size == 4 and sample.queues.new_batch_threshold == 2
    assert sample.route_prefix == "api"
    with pytest.raises(ValueError, match="messageEncoding"):
        HostJson.from_dict({"extensions": {"queues": {"messageEncoding": "utf8"}}})


def test_queue_overrides_win_over_host_json() -> None:
    overridden = load_host_json(SAMPLE_APP, {"maxPollingInterval": "00:00:00.200", "batchSize": 1}).queues
    assert (overridden.max_polling_interval, overridden.batch_size, overridden.new_batch_threshold) == (0.2, 1, 0)
    assert overridden.max_dequeue_count == 3  # the rest still comes from host.json


def test_project_host_json_is_readable() -> None:
    project = load_host_json(Path(__file__).resolve().parents[2])
    assert project.queues.message_encoding in ("base64", "none")


def test_message_encoding_round_trip() -> None:
    assert encode_message("héllo", "base64") == "aMOpbGxv"
    assert decode_message("aMOpbGxv", "base64") == "héllo".encode()
    assert encode_message(b"plain", "none") == "plain"
    assert decode_message("plain text", "none") == b"plain text"
    with pytest.raises(ValueError, match="base64"):
        decode_message("not base64!", "base64")


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items/{id:int}/{name?}", "items/42/bolt", {"id": "42", "name": "bolt"}),
        ("items/{id:int}/{name?}", "items/42", {"id": "42"}),
        ("items/{id:int}/{name?}", "ITEMS/7/", {"id": "7"}),
        ("items/{id:int}/{name?}", "items/abc", None),
        ("users/{name:alpha}", "users/Ann", {"name": "Ann"}),
        ("users/{name:alpha}", "users/ann1", None),
        ("files/{*rest}", "files/a/b%20c.txt", {"rest": "a/b c.txt"}),
        ("restore/{jobId:guid}", "restore/0f8fad5b-d9cb-469f-a165-70867728950e",
         {"jobId": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
        ("page/{n:int:range(1,10)}", "page/11", None),
        ("page/{n:int:range(1,10)}", "page/10", {"n": "10"}),
        ("code/{c:length(3)}", "code/abcd", None),
        ("when/{d:datetime}", "when/2026-01-01", {"d": "2026-01-01"}),
        ("report.{ext}", "report.json", {"ext": "json"}),
        ("lang/{l=en}", "lang", {"l": "en"}),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


def test_route_precedence_prefers_literals() -> None:
    routes = sorted([RouteTemplate.parse("items/{id}"), RouteTemplate.parse("items/latest")],
                    key=RouteTemplate.sort_key)
    assert routes[0].template == "items/latest"


def test_percent_settings_resolution() -> None:
    assert resolve_expression("%A%-%B%", {"A": "x", "B": "y"}, what="t") == "x-y"
    assert resolve_expression("plain", {}, what="t") == "plain"
    with pytest.raises(UnresolvedSettingError, match="%MISSING%"):
        resolve_expression("%MISSING%", {}, what="t")


def test_local_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    content = {"IsEncrypted": False, "Values": {"A": "1", "B": True}, "Host": {"LocalHttpPort": 7075}}
    path.write_text(json.dumps(content))
    settings = load_local_settings(path)
    assert settings == {"A": "1", "B": "true"}
    assert settings.local_http_port == 7075


def test_connection_string_wins_over_identity_settings() -> None:
    settings = {"Ops": "UseDevelopmentStorage=true", "Ops__queueServiceUri": "https://acct.queue.core.windows.net"}
    assert resolve_queue_connection("Ops", settings).connection_string == "UseDevelopmentStorage=true"
    assert resolve_queue_connection("Storage", {"AzureWebJobsStorage": "cs"}).connection_string == "cs"
    assert resolve_queue_connection(None, {"AzureWebJobsStorage": "cs"}).name == "AzureWebJobsStorage"


def test_identity_based_connection_uses_the_user_assigned_identity() -> None:
    connection = resolve_queue_connection("Ops", {
        "Ops__queueServiceUri": "https://acct.queue.core.windows.net/",
        "Ops__credential": "managedidentity",
        "Ops__clientId": "00000000-0000-0000-0000-000000000001",
    })
    assert connection.service_uri == "https://acct.queue.core.windows.net"
    assert connection.credential_kind == "managedidentity"
    assert connection.client_id == "00000000-0000-0000-0000-000000000001"
    assert isinstance(connection.make_credential(), ManagedIdentityCredential)
    client = connection.queue_client("jobs")
    assert client.url.startswith("https://acct.queue.core.windows.net/jobs")


def test_identity_based_connection_alias_and_default_credential() -> None:
    connection = resolve_queue_connection("Ops", {"Ops__serviceUri": "https://acct.queue.core.windows.net"})
    assert connection.credential_kind is None
    assert isinstance(connection.make_credential(), DefaultAzureCredential)
    account = resolve_queue_connection(None, {"AzureWebJobsStorage__accountName": "acct"})
    assert account.service_uri == "https://acct.queue.core.windows.net"
    with pytest.raises(ConnectionNotConfiguredError, match="Other__queueServiceUri"):
        resolve_queue_connection("Other", {"Other__accountName": "acct"})


def test_crash_point_spec() -> None:
    assert CrashPoint.parse("pkg.mod:Cls.fn") == CrashPoint("after", "pkg.mod", "Cls.fn")
    assert CrashPoint.parse("before:pkg.mod:fn").when == "before"
    with pytest.raises(ValueError):
        CrashPoint.parse("no-colon")


def test_binding_metadata_is_read_from_the_app() -> None:
    with offline_host() as host:
        functions = host.functions
        assert set(functions) == {"sample_timer", "sample_monitored_timer", "sample_queue", "items", "hello",
                                  "boom", "admin_only", "enqueue", "with_context", "log_from_threads",
                                  "async_log_from_threads"}
        timer = functions["sample_timer"]
        assert timer.trigger.type == "timerTrigger" and timer.trigger.get("schedule") == "%SAMPLE_SCHEDULE%"
        assert timer.trigger.get("useMonitor") is False
        queue = functions["sample_queue"]
        assert (queue.trigger.get("queueName"), queue.trigger.get("connection")) == ("%SAMPLE_QUEUE%", "SampleStorage")
        assert [(b.type, b.get("queueName")) for b in queue.outputs] == [("queue", "%SAMPLE_OUT_QUEUE%")]
        items = functions["items"].trigger
        assert (items.get("route"), items.get("methods"), items.get("authLevel")) == (
            "items/{id:int}/{name?}", ["GET", "POST"], "FUNCTION")
        assert functions["hello"].is_async and not functions["items"].is_async
        assert functions["with_context"].wants_context
        assert functions["admin_only"].trigger.get("authLevel") == "ADMIN"


def test_settings_become_environment_and_are_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("SAMPLE_QUEUE", "before")
    host = offline_host().start()
    try:
        assert os.environ["SAMPLE_QUEUE"] == "offline-queue"
        assert "sample_blueprint" in sys.modules
        # Another app, or the same app with other settings, cannot share the process's environment.
        with pytest.raises(HostAlreadyRunningError, match="different app or different settings"):
            offline_host(settings={**OFFLINE_SETTINGS, "SAMPLE_QUEUE": "other-queue"}).start()
        assert os.environ["SAMPLE_QUEUE"] == "offline-queue"
        # The same app with the same settings is a second instance of it: it shares the loaded app.
        second = offline_host().start()
        assert second.module is host.module and second.instance_id != host.instance_id
        second.stop()
        assert os.environ["SAMPLE_QUEUE"] == "offline-queue"  # the first instance still runs
    finally:
        host.stop()
    assert os.environ["SAMPLE_QUEUE"] == "before"
    assert "SAMPLE_RECORD_FILE" not in os.environ
    assert "sample_blueprint" not in sys.modules and str(SAMPLE_APP) not in sys.path


def test_unresolved_setting_fails_start() -> None:
    settings = {k: v for k, v in OFFLINE_SETTINGS.items() if k != "SAMPLE_SCHEDULE"}
    host = offline_host(settings=settings)
    with pytest.raises(UnresolvedSettingError, match="SAMPLE_SCHEDULE"):
        host.start()
    # A failed start undoes itself: another host can start.
    offline_host().start().stop()


def test_invalid_queue_name_fails_start() -> None:
    with pytest.raises(ValueError, match="queue name"):
        offline_host(settings={**OFFLINE_SETTINGS, "SAMPLE_QUEUE": "Bad_Name"}).start()


@pytest.mark.parametrize("schedule", ["0 0 2 * * 7", "0 0 2 ? * *", "0 0 2 * *  *  *", "0 2 * *", "0 0 2 * * *\t"])
def test_a_schedule_the_timer_cannot_parse_leaves_the_function_in_error(
    schedule: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As on the real host: indexing fails for that function only, loudly in the log; the host runs
    # the others, and the timer never fires (nor can it be fired by the admin API).
    with caplog.at_level(logging.ERROR), \
            offline_host(settings={**OFFLINE_SETTINGS, "SAMPLE_SCHEDULE": schedule}, http_port=0) as host:
        assert set(host.function_errors) == {"sample_timer"}
        assert "was not recognized as a valid cron expression" in host.function_errors["sample_timer"]
        assert "sample_timer" not in host.schedules
        assert "items" in host.functions and "items" not in host.function_errors
        with pytest.raises(FunctionInErrorError, match="sample_timer is in error"):
            host.fire_timer("sample_timer")
        admin = requests.post(f"{host.http_url}/admin/functions/sample_timer", json={"input": ""},
                              headers={"x-functions-key": host.master_key}, timeout=10)
        assert admin.status_code == 404
    assert "Error indexing method 'Functions.sample_timer'" in caplog.text
    assert "Function 'sample_timer' failed indexing" in caplog.text
    assert not host.invocations


def test_five_field_schedules_are_minutes_first() -> None:
    with offline_host(settings={**OFFLINE_SETTINGS, "SAMPLE_SCHEDULE": "*/5 * * * *"}) as host:
        assert host.function_errors == {}
        schedule = host.schedules["sample_timer"]
        assert not schedule.including_seconds
        assert schedule.field_values()["minutes"] == list(range(0, 60, 5))
        assert schedule.field_values()["seconds"] == [0]


def test_timespan_schedules_are_not_implemented_by_the_stand_in() -> None:
    with pytest.raises(ValueError, match="TimeSpan"):
        offline_host(settings={**OFFLINE_SETTINGS, "SAMPLE_SCHEDULE": "00:05:00"}).start()


def test_disabled_function_setting() -> None:
    with offline_host(settings={**OFFLINE_SETTINGS, "AzureWebJobs.sample_timer.Disabled": "true"}) as host:
        assert host.disabled == {"sample_timer"}


def test_a_stopped_host_can_start_again() -> None:
    host = offline_host()
    with host:
        assert host.fire_timer("sample_timer").succeeded
    with host:  # the app is imported afresh; the records are kept
        assert host.fire_timer("sample_timer", past_due=True).succeeded
    assert [r.details["past_due"] for r in host.invocations] == [False, True]


def test_queue_function_can_be_invoked_directly() -> None:
    with offline_host() as host:
        record = host.invoke_queue_function("sample_queue", "plain body")
        failed = host.invoke_queue_function("sample_queue", "fail now")
    assert (record.trigger, record.outcome) == ("manual", "success")
    assert (failed.outcome, failed.error) == ("failure", "RuntimeError: failing on purpose: fail now")
