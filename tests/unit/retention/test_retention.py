"""Retention on the fakes: each keep/delete rule, dry run, immutability, sidecars, failures, the CLI."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from dr_core import cli
from dr_core.catalog.entry import CatalogEntry
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.relabel import RelabelOutcome
from dr_core.catalog.tags import TAG_CATALOG, backup_tags, catalog_tags_for
from dr_core.context import reset_context
from dr_core.inventory.resolver import UnknownInstanceError
from dr_core.jobs.ids import JobKind, make_job_id
from dr_core.jobs.job import Job, Trigger
from dr_core.kernel.errors import AzureUnavailableError, InvalidRequestError
from dr_core.kernel.ids import ApimResourceId
from dr_core.kernel.phases import JobState
from dr_core.ports import DeleteOutcome, RecordKind, StoredRecord
from dr_core.retention.cursor import CURSOR_KEY
from dr_core.retention.plan import Action, Reason, plan_instance
from dr_core.retention.pruner import LOG_PREFIX, RetentionIncompleteError, RetentionPruner
from dr_core.retention.report import Outcome
from tests.unit.fakes import T0, World, rid, settings, world

CONTAINER = "apim-backups"
PROD, DEV = "apim-prod", "apim-dev"


def entry(age_days: float, sku: str = "Standard", service: str = PROD) -> CatalogEntry:
    created = T0 - timedelta(days=age_days)
    return CatalogEntry(container=CONTAINER, blob_name=backup_blob_name(service, created), service_name=service,
                        sku=sku, created=created, expires=created + timedelta(days=30), size=10, location="",
                        job_id="backup-x")


# -- the rules, table-driven ------------------------------------------------------------------------
# (case, keep_last, max_age_days, backups as (age in days, tier), in-use indexes, expected (action, reason) per
# backup newest first)
K, D = Action.KEEP, Action.DELETE
PLAN_CASES: list[tuple[str, int, int, list[tuple[float, str]], set[int], list[tuple[Action, Reason]]]] = [
    ("defaults: three newest kept, young kept, old deleted", 3, 37,
     [(0, "Standard"), (1, "Standard"), (2, "Standard"), (3, "Standard"), (40, "Standard"), (50, "Standard")], set(),
     [(K, Reason.KEEP_LAST)] * 3 + [(K, Reason.WITHIN_MAX_AGE), (D, Reason.PAST_MAX_AGE), (D, Reason.PAST_MAX_AGE)]),
    ("keepLast holds old backups when nothing newer exists", 3, 37,
     [(40, "Standard"), (50, "Standard"), (60, "Standard"), (70, "Standard")], set(),
     [(K, Reason.KEEP_LAST)] * 3 + [(D, Reason.PAST_MAX_AGE)]),
    ("keepLast larger than the catalog keeps all", 5, 1, [(10, "Standard"), (20, "Standard")], set(),
     [(K, Reason.KEEP_LAST)] * 2),
    ("the newest restorable survives past maxAgeDays", 1, 7,
     [(1, "BasicV2"), (10, "Standard"), (20, "Standard")], set(),
     [(K, Reason.KEEP_LAST), (K, Reason.NEWEST_RESTORABLE), (D, Reason.PAST_MAX_AGE)]),
    ("a tier that cannot restore is not the newest restorable", 1, 7,
     [(0, "Standard"), (10, "Isolated"), (12, "Consumption")], set(),
     [(K, Reason.KEEP_LAST), (D, Reason.PAST_MAX_AGE), (D, Reason.PAST_MAX_AGE)]),
    ("an expired backup is not restorable", 1, 7, [(0.5, "BasicV2"), (31, "Standard"), (32, "Premium")], set(),
     [(K, Reason.KEEP_LAST), (D, Reason.PAST_MAX_AGE), (D, Reason.PAST_MAX_AGE)]),
    ("a backup a running restore reads is kept", 1, 37, [(0, "Standard"), (40, "Standard"), (45, "Standard")],
     {1}, [(K, Reason.KEEP_LAST), (K, Reason.IN_USE), (D, Reason.PAST_MAX_AGE)]),
    ("exactly maxAgeDays old is kept, a second more is not", 1, 37,
     [(0, "Standard"), (37, "Standard"), (37 + 1 / 86400, "Standard")], set(),
     [(K, Reason.KEEP_LAST), (K, Reason.WITHIN_MAX_AGE), (D, Reason.PAST_MAX_AGE)]),
    ("a backup dated in the future is young", 1, 37, [(-2, "Standard"), (-1, "Standard")], set(),
     [(K, Reason.KEEP_LAST), (K, Reason.WITHIN_MAX_AGE)]),
    ("keepLast 1 and maxAgeDays 1: only the newest and the young stay", 1, 1,
     [(0.2, "Standard"), (0.5, "Standard"), (2, "Standard"), (29, "Premium")], set(),
     [(K, Reason.KEEP_LAST), (K, Reason.WITHIN_MAX_AGE), (D, Reason.PAST_MAX_AGE), (D, Reason.PAST_MAX_AGE)]),
    ("no backups, no decisions", 3, 37, [], set(), []),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan(case):
    _, keep_last, max_age, backups, in_use, expected = case
    entries = [entry(age, sku) for age, sku in backups]
    using = {(CONTAINER, entries[i].blob_name): "restore-20261130T020000Z-apim-dr-0000abcd" for i in in_use}
    # Order of the input does not matter: decisions come newest first.
    decisions = plan_instance(list(reversed(entries)), keep_last=keep_last, max_age_days=max_age, now=T0,
                              in_use=using)
    assert [(d.action, d.reason) for d in decisions] == expected
    assert [d.entry.blob_name for d in decisions] == [e.blob_name for e in entries]
    kept = sum(1 for d in decisions if d.action is Action.KEEP)
    assert kept >= min(keep_last, len(entries)), "never fewer than keepLast"


def test_plan_reasons_say_why():
    decisions = plan_instance([entry(0), entry(10, "Standard"), entry(40), entry(41, "Isolated"), entry(20)],
                              keep_last=1, max_age_days=15, now=T0, in_use={})
    why = {d.entry.blob_name: d.why for d in decisions}
    assert "one of the newest 1 (keepLast)" in why[entry(0).blob_name]
    assert why[entry(10).blob_name] == "10.0 days old, within maxAgeDays 15"
    assert "20.0 days old, past maxAgeDays 15" in why[entry(20).blob_name]
    assert f"a newer backup is restorable ({entry(0).blob_name})" in why[entry(20).blob_name]
    assert "not restorable: expired on" in why[entry(40).blob_name]
    assert "expired on" in why[entry(41, "Isolated").blob_name]  # expiry is named before the tier
    young_isolated = plan_instance([entry(0), entry(3, "Isolated")], keep_last=1, max_age_days=1, now=T0)
    assert "the Isolated tier cannot be restored" in young_isolated[1].why
    newest = plan_instance([entry(0, "BasicV2"), entry(20)], keep_last=1, max_age_days=1, now=T0)
    assert newest[1].reason is Reason.NEWEST_RESTORABLE and "expires 2026-12-10" in newest[1].why


def test_equal_creation_times_are_ordered_by_name():
    first = entry(40)
    second = CatalogEntry(**{**first.__dict__, "blob_name": first.blob_name.replace(".apimbackup", "9.apimbackup")})
    decisions = plan_instance([first, second], keep_last=1, max_age_days=1, now=T0)
    assert [d.entry.blob_name for d in decisions] == [second.blob_name, first.blob_name]


# -- the use case on the fakes ----------------------------------------------------------------------

def add_backup(w: World, age_days: float, *, service: str = PROD, sku: str = "Standard",
               container: str = CONTAINER) -> str:
    created = T0 - timedelta(days=age_days)
    name = backup_blob_name(service, created)
    w.backups.add(container, name, created=created,
                  tags=backup_tags(service_name=service, sku=sku, created=created, job_id="backup-x", size=10))
    return name


def pruner(w: World, **kwargs: Any) -> RetentionPruner:
    return RetentionPruner(settings=w.ctx.settings, jobs=w.store, cursor=w.ctx.retention_cursor(), backups=w.backups,
                           resolver=w.ctx.resolver(), clock=w.clock, **kwargs)


def retention_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()[len(LOG_PREFIX):]) for r in caplog.records
            if r.getMessage().startswith(LOG_PREFIX)]


def prod_world(**extra: str) -> World:
    return world(settings([{"resourceId": rid(PROD), "alias": "prod", "keepLast": 2, "maxAgeDays": 37},
                           rid(DEV)], **extra))


def test_dry_run_deletes_nothing_and_says_what_it_would(caplog):
    w = prod_world()
    names = [add_backup(w, age) for age in (0, 10, 20, 40, 50)]
    caplog.set_level(logging.INFO, logger="apim_dr.retention")
    report = pruner(w).run(dry_run=True)
    assert w.backups.deleted == [] and "delete" not in w.backups.calls
    outcomes = {r.decision.entry.blob_name: r.outcome for r in report.results}
    assert [outcomes[n] for n in names] == [Outcome.KEPT] * 3 + [Outcome.WOULD_DELETE] * 2
    assert report.totals()["wouldDelete"] == 2 and not report.failed
    (summary,) = retention_lines(caplog)
    assert summary["outcome"] == "summary" and summary["dryRun"] is True and summary["wouldDelete"] == 2
    body = report.to_json()
    prod = next(i for i in body["instances"] if i["serviceName"] == PROD)
    assert prod["keepLast"] == 2 and prod["maxAgeDays"] == 37
    assert [b["outcome"] for b in prod["backups"]] == ["kept"] * 3 + ["would-delete"] * 2
    assert prod["backups"][3]["reason"] == "past-max-age" and prod["backups"][3]["ageDays"] == 40.0


def test_real_run_deletes_exactly_the_old_ones_and_logs_each_reason(caplog):
    w = prod_world()
    keep = [add_backup(w, age) for age in (0, 10, 20)]
    gone = [add_backup(w, age) for age in (40, 50)]
    dev_keep = [add_backup(w, age, service=DEV) for age in (1, 39, 40)]  # DEV: default keepLast 3
    caplog.set_level(logging.INFO, logger="apim_dr.retention")
    report = pruner(w).run(dry_run=False)
    assert sorted(n for _, n in w.backups.deleted) == sorted(gone)
    assert all((CONTAINER, n) in w.backups.blobs for n in keep + dev_keep)
    lines = retention_lines(caplog)
    deleted = [line for line in lines if line["outcome"] == "deleted"]
    assert sorted(d["blobName"] for d in deleted) == sorted(gone)
    assert all(d["reason"] == "past-max-age" and "past maxAgeDays 37" in d["why"] and d["instance"] == rid(PROD)
               for d in deleted)
    assert lines[-1]["outcome"] == "summary" and lines[-1]["deleted"] == 2 and lines[-1]["kept"] == 6
    assert not report.failed
    # A second run finds nothing more to do.
    assert pruner(w).run(dry_run=False).totals()["deleted"] == 0


def test_immutable_backups_are_skipped_and_reported(caplog):
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    locked = add_backup(w, 40)
    w.backups.immutable.add((CONTAINER, locked))
    w.backups.put_json(CONTAINER, locked + ".manifest.json", {"apis": []})
    caplog.set_level(logging.INFO, logger="apim_dr.retention")
    report = pruner(w).run(dry_run=False)
    (result,) = [r for r in report.results if r.decision.action is Action.DELETE]
    assert result.outcome is Outcome.SKIPPED_IMMUTABLE and "immutability policy or legal hold" in (result.detail or "")
    assert (CONTAINER, locked) in w.backups.blobs
    assert (CONTAINER, locked + ".manifest.json") in w.backups.documents, "the sidecar stays with its backup"
    assert not report.failed, "a skip is not a failure"
    (line,) = [line for line in retention_lines(caplog) if line["outcome"] == "skipped-immutable"]
    assert line["blobName"] == locked and "legal hold" in line["detail"]
    assert [r.levelno for r in caplog.records if "skipped-immutable" in r.getMessage()] == [logging.WARNING]


def test_sidecars_go_with_their_backup_and_nothing_else_is_touched():
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    old = add_backup(w, 40)
    w.backups.put_json(CONTAINER, old + ".manifest.json", {"apis": ["echo"]})
    # Not catalog backups: an untagged blob, an unfinished one, a document of a kept backup, another container.
    w.backups.add(CONTAINER, "notes/readme.txt", created=T0 - timedelta(days=400))
    unlabelled = backup_blob_name(PROD, T0 - timedelta(days=90))
    w.backups.add(CONTAINER, unlabelled, created=T0 - timedelta(days=90))
    w.backups.add(CONTAINER, backup_blob_name(PROD, T0 - timedelta(days=80)), created=T0 - timedelta(days=80),
                  tags={"apimdr_state": "running", "apimdr_service": PROD})
    other = add_backup(w, 60, container="elsewhere")
    report = pruner(w).run(dry_run=False)
    (result,) = [r for r in report.results if r.outcome is Outcome.DELETED]
    assert result.sidecars_deleted == [old + ".manifest.json"]
    assert w.backups.deleted == [(CONTAINER, old), (CONTAINER, old + ".manifest.json")]
    assert ("elsewhere", other) in w.backups.blobs and (CONTAINER, unlabelled) in w.backups.blobs


@pytest.mark.parametrize(("answer", "outcome", "failed"), [
    (DeleteOutcome.MISSING, Outcome.MISSING, False),
    (AzureUnavailableError("backup account x: storage answered 503 ServerBusy", code="StorageRequestFailed",
                           remediation="retry later"), Outcome.FAILED, True),
])
def test_missing_and_failing_deletes(answer, outcome, failed):
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    old = add_backup(w, 45)
    w.backups.delete_answers[(CONTAINER, old)] = answer
    report = pruner(w).run(dry_run=False)
    (result,) = [r for r in report.results if r.decision.action is Action.DELETE]
    assert result.outcome is outcome and report.failed is failed
    if failed:
        assert "503 ServerBusy" in (result.detail or "") and "retry later" in (result.detail or "")


def test_a_forbidden_delete_names_the_retention_role():
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    old = add_backup(w, 45)
    w.backups.delete_answers[(CONTAINER, old)] = AzureUnavailableError(
        "backup account x: storage answered 403 AuthorizationPermissionMismatch", code="StorageRequestFailed")
    w.backups.put_json(CONTAINER, old + ".manifest.json", {})
    with pytest.raises(RetentionIncompleteError) as raised:
        pruner(w).run_scheduled()
    assert "1 deletion(s) failed" in raised.value.message
    report = pruner(w).run(dry_run=False)
    (result,) = [r for r in report.results if r.outcome is Outcome.FAILED]
    assert "APIM DR Backup Retention" in (result.detail or "")
    assert (CONTAINER, old + ".manifest.json") in w.backups.documents, "no sidecar deleted without its backup"


@pytest.mark.parametrize(("answer", "failed", "problem"), [
    (DeleteOutcome.IMMUTABLE, False, "immutability policy or legal hold"),
    (AzureUnavailableError("storage answered 500 InternalError", code="StorageRequestFailed"), True, "500"),
])
def test_sidecar_problems_are_reported(answer, failed, problem):
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    old = add_backup(w, 45)
    w.backups.delete_answers[(CONTAINER, old + ".manifest.json")] = answer
    report = pruner(w).run(dry_run=False)
    (result,) = [r for r in report.results if r.decision.action is Action.DELETE]
    assert result.outcome is Outcome.DELETED and (CONTAINER, old) not in w.backups.blobs
    assert result.failed is failed and report.failed is failed
    assert problem in result.sidecar_problems[0]


def test_a_running_restore_keeps_its_backup_and_a_finished_one_does_not():
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    read = add_backup(w, 45)
    running = restore_job(read, JobState.RUNNING)
    w.store.put(running)
    report = pruner(w).run(dry_run=False)
    (result,) = [r for r in report.results if r.decision.entry.blob_name == read]
    assert result.outcome is Outcome.KEPT and result.decision.reason is Reason.IN_USE
    assert running.job_id in result.decision.why
    w.store.put(restore_job(read, JobState.SUCCEEDED, job_id=running.job_id))
    assert pruner(w).run(dry_run=False).totals()["deleted"] == 1


def restore_job(blob: str, state: JobState, *, job_id: str | None = None) -> Job:
    target = ApimResourceId.parse(rid("apim-dr"))
    return Job(job_id=job_id or make_job_id(JobKind.RESTORE, target, T0, unique=True), kind=JobKind.RESTORE,
               instance=str(target), service_name=target.service_name, state=state, trigger=Trigger.HTTP, slot=T0,
               created_at=T0, updated_at=T0, deadline=T0 + timedelta(hours=3), storage_account="apimdrbackups",
               container=CONTAINER, blob_name=blob, access_type="SystemAssignedManagedIdentity",
               source_instance=rid(PROD), next_action_at=T0)


def test_the_jobs_table_unreadable_means_nothing_is_deleted():
    w = prod_world()
    add_backup(w, 0)
    add_backup(w, 1)
    add_backup(w, 45)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AzureUnavailableError("the app's storage: could not be reached", code="StorageUnreachable")

    w.store.recent_jobs = broken  # type: ignore[method-assign]
    with pytest.raises(AzureUnavailableError):
        pruner(w).run(dry_run=False)
    assert w.backups.deleted == []


def test_one_unreadable_catalog_does_not_stop_the_others(caplog):
    w = prod_world()
    add_backup(w, 0, service=DEV)
    for age in (0, 1, 45):
        add_backup(w, age)
    w.backups.find_errors[DEV] = AzureUnavailableError("backup account: storage answered 500", code="X")
    caplog.set_level(logging.INFO, logger="apim_dr.retention")
    report = pruner(w).run(dry_run=False)
    assert report.totals()["deleted"] == 1 and report.totals()["instanceErrors"] == 1 and report.failed
    dev = next(i for i in report.to_json()["instances"] if i["serviceName"] == DEV)
    assert dev["error"]["code"] == "X" and dev["backups"] == []
    assert any(line["outcome"] == "failed" and "catalog could not be read" in line["detail"]
               for line in retention_lines(caplog))
    with pytest.raises(RetentionIncompleteError, match="1 instance"):
        pruner(w).run_scheduled()


def test_one_service_only_and_bad_references():
    w = prod_world()
    for age in (0, 1, 45):
        add_backup(w, age)
    for age in (0, 1, 2, 45):  # DEV keeps 3: a run over every instance would delete its 45-day one
        add_backup(w, age, service=DEV)
    report = pruner(w).run(service="prod", dry_run=False)
    assert [i.instance.name for i in report.instances] == [PROD] and report.totals()["deleted"] == 1
    with pytest.raises(UnknownInstanceError):
        pruner(w).run(service="apim-nope", dry_run=True)
    for hostile in ("", "   ", "x" * 5000, "/subscriptions/../etc/passwd", "/subscriptions/x/resourceGroups"):
        with pytest.raises(InvalidRequestError) as raised:
            pruner(w).run(service=hostile, dry_run=True)
        assert "service" in raised.value.fields
    assert (CONTAINER, backup_blob_name(DEV, T0 - timedelta(days=45))) in w.backups.blobs


def test_bad_instance_entries_are_reported_and_the_rest_pruned():
    w = world(settings([rid(PROD), {"resourceId": rid(DEV), "keepLast": 0}]))
    for age in (0, 1, 2, 45):
        add_backup(w, age)
    report = pruner(w).run(dry_run=False)
    assert report.totals()["deleted"] == 1
    assert any("keepLast" in p for p in report.problems), report.problems


def test_an_instance_listed_twice_is_pruned_once():
    w = world(settings([rid(PROD), rid(PROD, rg="rg-other")]))
    for age in (0, 1, 2, 45):
        add_backup(w, age)
    report = pruner(w).run(dry_run=False)
    assert len(report.instances) == 1 and report.totals()["deleted"] == 1


class Ticks:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_scheduled_run_stops_at_its_budget_and_the_next_one_resumes():
    names = [f"apim-{c}" for c in "abcde"]
    w = world(settings([rid(n) for n in names]))
    for name in names:
        for age in (0, 1, 2, 45):
            add_backup(w, age, service=name)
    # Each read of the clock is 100 s: the budget of 240 s allows two one-instance chunks.
    first = pruner(w, parallel=1, monotonic=Ticks(100)).run_scheduled()
    assert [i.instance.name for i in first.instances] == ["apim-a", "apim-b"]
    assert first.not_reached == [rid(n) for n in ("apim-c", "apim-d", "apim-e")]
    cursor = w.store.get_record(RecordKind.RETENTION, CURSOR_KEY)
    assert cursor is not None and cursor.data["resumeAfter"] == ApimResourceId.parse(rid("apim-b")).key
    second = pruner(w, parallel=1, monotonic=Ticks(100)).run_scheduled()
    assert [i.instance.name for i in second.instances] == ["apim-c", "apim-d"]
    third = pruner(w, parallel=4, monotonic=Ticks(1)).run_scheduled()
    assert [i.instance.name for i in third.instances] == ["apim-e", "apim-a", "apim-b", "apim-c", "apim-d"]
    assert third.not_reached == []
    cursor = w.store.get_record(RecordKind.RETENTION, CURSOR_KEY)
    assert cursor is not None and cursor.data["resumeAfter"] is None
    assert len(w.backups.deleted) == 5
    # The CLI (no budget) and dry runs neither read nor move the cursor.
    w.store.put_record(StoredRecord(RecordKind.RETENTION, CURSOR_KEY, {"resumeAfter": "zzz"}, etag=cursor.etag))
    everything = pruner(w, monotonic=Ticks(1000)).run(dry_run=False)
    assert len(everything.instances) == 5 and everything.not_reached == []
    stored = w.store.get_record(RecordKind.RETENTION, CURSOR_KEY)
    assert stored is not None and stored.data["resumeAfter"] == "zzz"


def test_an_unreadable_or_contested_cursor_does_not_stop_the_run():
    w = world(settings([rid("apim-a"), rid("apim-b")]))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AzureUnavailableError("the app's storage: could not be reached", code="StorageUnreachable")

    w.store.get_record = broken  # type: ignore[method-assign]
    report = pruner(w).run_scheduled()
    assert [i.instance.name for i in report.instances] == ["apim-a", "apim-b"]

    contested = world(settings([rid("apim-a"), rid("apim-b")]))
    contested.store.conflict_next_record_put = True  # another run writes the cursor just before this one
    report = pruner(contested).run_scheduled()
    assert [i.instance.name for i in report.instances] == ["apim-a", "apim-b"] and not report.failed
    assert contested.store.get_record(RecordKind.RETENTION, CURSOR_KEY) is None  # this run's cursor was not forced in


# -- the CLI ------------------------------------------------------------------------------------------

@pytest.fixture
def cli_world():
    w = prod_world()
    reset_context(w.ctx)
    yield w
    reset_context()


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(list(argv), stdout=out), out.getvalue()


def test_cli_dry_run_prints_each_decision(cli_world):
    names = [add_backup(cli_world, age) for age in (0, 10, 40)]
    code, text = run_cli("prune", "--dry-run", "--service", "prod")
    assert code == 0 and cli_world.backups.deleted == []
    assert "apim-prod (apim-backups): keepLast 2, maxAgeDays 37, 3 backup(s)" in text
    assert f"[keep   ] {names[0]}  keep-last: one of the newest 2 (keepLast)" in text
    assert f"[DELETE ] {names[2]}  past-max-age: 40.0 days old, past maxAgeDays 37" in text
    assert "dry run: 1 backup(s) would be deleted, 2 kept; nothing was changed" in text


@pytest.mark.parametrize("argv", [("--json", "prune", "--dry-run"), ("prune", "--dry-run", "--json")])
def test_cli_json_either_side_of_the_command(cli_world, argv):
    add_backup(cli_world, 40)
    code, text = run_cli(*argv)
    body = json.loads(text)
    assert code == 0 and body["dryRun"] is True and body["totals"]["instances"] == 2


def test_cli_real_run_and_exit_codes(cli_world):
    add_backup(cli_world, 0)
    add_backup(cli_world, 1)
    old = add_backup(cli_world, 40)
    failing = add_backup(cli_world, 41)
    cli_world.backups.delete_answers[(CONTAINER, failing)] = AzureUnavailableError(
        "backup account: storage answered 403 AuthorizationPermissionMismatch", code="StorageRequestFailed")
    code, text = run_cli("prune")
    assert code == 1, text
    assert f"[deleted] {old}" in text and f"[FAILED ] {failing}" in text and "APIM DR Backup Retention" in text
    assert "1 deleted, 0 skipped (immutable), 0 already gone, 1 failed" in text
    del cli_world.backups.delete_answers[(CONTAINER, failing)]
    assert run_cli("prune")[0] == 0


@pytest.mark.parametrize(("argv", "code"), [
    (("prune", "--service", "apim-nope"), 5),
    (("prune", "--service", ""), 2),
    (("prune", "--service", "x" * 10000), 2),
    (("prune", "--service", "/subscriptions/not-a-guid"), 2),
    (("prune", "--service", "prod\n; rm -rf /"), 5),
])
def test_cli_hostile_services(cli_world, argv, code):
    for age in (0, 1, 40):  # keepLast 2: a real prune of prod would delete the 40-day one
        add_backup(cli_world, age)
    result, text = run_cli(*argv)
    assert result == code, text
    assert cli_world.backups.deleted == []
    assert len(text) < 2000


@pytest.mark.parametrize("argv", [("prune", "--keep-last", "1"), ("prune", "--dry-run=yes"), ("prune", "extra")])
def test_cli_unknown_arguments_are_usage_errors(cli_world, argv):
    with pytest.raises(SystemExit) as raised:
        run_cli(*argv)
    assert raised.value.code == 2


def test_cli_needs_valid_settings():
    reset_context()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("APIM_DR_BACKUP_STORAGE_ACCOUNT", "Not A Name")
            mp.setenv("APIM_DR_RETENTION_KEEP_LAST", "0")
            mp.setenv("APIM_DR_RETENTION_MAX_AGE_DAYS", "forever")
            code, text = run_cli("prune", "--dry-run")
    finally:
        reset_context()
    assert code == 4
    assert "APIM_DR_RETENTION_KEEP_LAST=0 is outside 1-1000" in text
    assert "APIM_DR_RETENTION_MAX_AGE_DAYS='forever' is not a whole number" in text


def test_the_daily_timer_is_bound_to_a_fixed_schedule(function_metadata):
    from dr_core.kernel.schedule import Ncrontab
    from triggers.retention import RETENTION_SCHEDULE

    binding = json.loads(function_metadata["prune_backups"])["bindings"][0]
    assert binding["type"] == "timerTrigger" and binding["schedule"] == RETENTION_SCHEDULE
    # Daily, after the default 02:00 backups.
    slot = Ncrontab.parse(RETENTION_SCHEDULE).latest_at_or_before(T0 + timedelta(days=1))
    assert (slot.hour, slot.minute) == (3, 30)
    assert Ncrontab.parse(RETENTION_SCHEDULE).latest_at_or_before(slot - timedelta(seconds=1)) == slot - timedelta(
        days=1)


# -- backups labelled before the catalog tag (upgrades) ------------------------------------------------

def add_older_backup(w: World, age_days: float, *, service: str = PROD) -> str:
    """A backup as apim-dr labelled it before the catalog tag: the single tags only."""
    created = T0 - timedelta(days=age_days)
    name = backup_blob_name(service, created)
    tags = backup_tags(service_name=service, sku="Standard", created=created, job_id=f"backup-old-{age_days}",
                       size=10, location="West Europe")
    w.backups.add(CONTAINER, name, created=created, tags={k: v for k, v in tags.items() if k != TAG_CATALOG})
    return name


def test_the_catalog_tag_built_for_an_older_backup_is_the_one_a_new_backup_gets():
    created = T0 - timedelta(days=3)
    tags = backup_tags(service_name=PROD, sku="Premium", created=created, job_id="backup-1", size=12345,
                       location="East US 2")
    older = {k: v for k, v in tags.items() if k != TAG_CATALOG}
    assert catalog_tags_for(older) == tags
    assert catalog_tags_for(tags) is None  # has it already
    assert catalog_tags_for({**older, "apimdr_state": "running"}) is None  # not a finished backup
    assert catalog_tags_for({**older, "apimdr_created": "yesterday"}) is None  # no valid creation time
    assert catalog_tags_for({**older, **{f"other{i}": "x" for i in range(2)}}) is None  # no room for an 11th tag


def test_retention_relabels_older_backups_and_then_decides_on_them_too(caplog):
    w = prod_world()
    new = [add_backup(w, age) for age in (0, 10)]
    older = [add_older_backup(w, age) for age in (20, 40)]
    assert {e.blob_name for e in w.backups.find(CONTAINER, PROD)} == set(new)  # the catalog misses them
    caplog.set_level(logging.INFO)

    dry = pruner(w).run(dry_run=True)
    assert "set_tags" not in w.backups.calls and w.backups.deleted == []
    (prod,) = [i for i in dry.instances if i.instance.name == PROD]
    assert [(r.blob_name, r.outcome) for r in prod.relabelled] == [(n, RelabelOutcome.WOULD_RELABEL) for n in older]
    outcomes = {r.decision.entry.blob_name: r.outcome for r in prod.results}
    assert outcomes == {new[0]: Outcome.KEPT, new[1]: Outcome.KEPT, older[0]: Outcome.KEPT,
                        older[1]: Outcome.WOULD_DELETE}

    report = pruner(w).run(dry_run=False)
    assert report.totals()["relabelled"] == 2 and w.backups.deleted == [(CONTAINER, older[1])]
    assert {e.blob_name for e in w.backups.find(CONTAINER, PROD)} == {*new, older[0]}  # catalogued now
    lines = [json.loads(r.getMessage()[len("APIMDR_RELABEL "):]) for r in caplog.records
             if r.getMessage().startswith("APIMDR_RELABEL")]
    assert [(line["blobName"], line["outcome"]) for line in lines[-2:]] == [(n, "relabelled") for n in older]
    # Nothing left to relabel: one query, no write.
    w.backups.calls.clear()
    assert pruner(w).run(dry_run=False).totals()["relabelled"] == 0 and "set_tags" not in w.backups.calls


def test_a_failed_relabel_is_reported_and_the_rest_goes_on(monkeypatch):
    w = prod_world()
    add_backup(w, 0)
    broken, fine = add_older_backup(w, 5), add_older_backup(w, 6)
    real_set_tags = w.backups.set_tags

    def set_tags(container: str, name: str, tags: dict[str, str]) -> None:
        if name == broken:
            raise AzureUnavailableError("backup account unreachable", code="StorageUnreachable")
        real_set_tags(container, name, tags)

    monkeypatch.setattr(w.backups, "set_tags", set_tags)
    report = pruner(w).run(dry_run=False)
    (prod,) = [i for i in report.instances if i.instance.name == PROD]
    assert {r.blob_name: r.outcome for r in prod.relabelled} == {broken: RelabelOutcome.FAILED,
                                                                fine: RelabelOutcome.RELABELLED}
    assert "unreachable" in (prod.relabelled[0].detail or "")
    assert not prod.error and not report.failed  # nothing deleted wrongly; the next run tries again


def test_an_unreadable_old_query_leaves_retention_as_it_was(monkeypatch, caplog):
    w = prod_world()
    names = [add_backup(w, age) for age in (0, 10, 20, 40)]

    def unreachable(container: str, service: str) -> list[str]:
        raise AzureUnavailableError("backup account unreachable", code="StorageUnreachable")

    monkeypatch.setattr(w.backups, "finished_names", unreachable)
    caplog.set_level(logging.WARNING, logger="apim_dr.retention")
    report = pruner(w).run(dry_run=False)
    assert w.backups.deleted == [(CONTAINER, names[3])] and not report.failed
    assert any("could not be looked for" in r.getMessage() for r in caplog.records)


def test_cli_relabel(cli_world):
    add_backup(cli_world, 0)
    older = add_older_backup(cli_world, 3)
    code, text = run_cli("backups", "relabel", "--dry-run", "--service", "prod")
    assert code == 0 and f"[would-relabel] {older}" in text and "dry run: nothing was changed" in text
    assert "set_tags" not in cli_world.backups.calls
    code, text = run_cli("--json", "backups", "relabel")
    body = json.loads(text)
    (prod,) = [i for i in body["instances"] if i["instance"] == rid(PROD)]
    assert code == 0 and prod["catalogued"] == 1 and [r["outcome"] for r in prod["relabelled"]] == ["relabelled"]
    assert older in {e.blob_name for e in cli_world.backups.find(CONTAINER, PROD)}
    code, text = run_cli("backups", "relabel", "--service", "prod")
    assert code == 0 and "1 catalogued, 0 labelled before the catalog tag" not in text
    assert "2 catalogued, 0 labelled before the catalog tag" in text
    for service, expected in (("apim-nope", 5), ("<script>", 5), ("", 2), ("x" * 10000, 2),
                              ("/subscriptions/not-a-guid", 2)):
        code, text = run_cli("backups", "relabel", "--service", service)
        assert code == expected and len(text) < 2000, text
