"""The commands of ``apim-dr``: each calls its use cases and prints their typed results (``--json``: as the API).

Every command is ``(use cases, arguments, output) -> exit code``; :mod:`.parser` names which one a
command line runs. ``--wait`` follows a job and, when no Function App moves it on time, moves it
itself through the worker (every step is conditional, so the two never double up).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from dr_core.catalog.entry import stamp
from dr_core.catalog.naming import snapshot_id
from dr_core.jobs.job import Trigger
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.clock import iso_or_none
from dr_core.kernel.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, InvalidRequestError
from dr_core.kernel.phases import DrillPhase, JobState, RpoState
from dr_core.kernel.wire import JsonObject
from dr_core.restore.preflight import Outcome
from dr_core.restore.request import RestoreRequest
from dr_core.retention.report import Outcome as PruneOutcome
from dr_core.snapshots.restoring import parse_snapshot_restore_request

if TYPE_CHECKING:
    from dr_core.drills.record import DrillRecord
    from dr_core.jobs.job import Job
    from dr_core.posture.document import InstancePosture
    from dr_core.usecases import UseCases

    from .output import Output

__all__ = [
    "backup_start",
    "backups_list",
    "backups_relabel",
    "copies",
    "drill_start",
    "drills",
    "prune",
    "restore",
    "snapshot_restore",
    "standbys",
    "status",
]


# -- the catalog ----------------------------------------------------------------------------------------
def backups_list(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    listing = use.catalog().list(args.service)
    for listed in listing.backups:
        entry = listed.entry
        flag = "restorable" if listed.restorable else f"NOT restorable: {listed.not_restorable_because}"
        out.line(f"{stamp(entry.created)}  {entry.sku:<10} {entry.size or '?':>10} B  "
                 f"{entry.blob_name}  ({flag})")
    if not listing.backups:
        out.line("no backups")
    out.result(listing.to_json())
    return EXIT_OK


def backups_relabel(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    report = use.catalog().relabel(args.service, dry_run=args.dry_run)
    for problem in report.problems:
        out.line(f"problem: {problem}")
    for inst in report.instances:
        out.line(f"{inst.instance.name} ({inst.instance.container}): {inst.catalogued} catalogued, "
                 f"{len(inst.results)} labelled before the catalog tag")
        for result in inst.results:
            out.line(f"  [{result.outcome.value}] {result.blob_name}" + (f"  {result.detail}" if result.detail else ""))
    if args.dry_run:
        out.line("dry run: nothing was changed")
    out.result(report.to_json())
    return EXIT_FAILED if report.failed else EXIT_OK


# -- jobs -----------------------------------------------------------------------------------------------
def backup_start(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    job, created = use.planner().request_backup(args.instance, trigger=Trigger.CLI)
    out.line(f"backup job {job.job_id} {'created' if created else 'already exists'}")
    return _finish(use, job.job_id, args, out)


def restore(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    """``restore`` and ``preflight`` (a dry run by definition)."""
    dry_run = args.preflight_only or args.dry_run
    request = RestoreRequest(target=args.target, source=args.source, backup=args.backup, dry_run=dry_run,
                             confirm=args.confirm)
    plan, job = use.restorer().start(request, trigger=Trigger.CLI)
    now = use.clock.now()
    out.line(f"restore {plan.source.service_name} -> {plan.target.service_name}"
             + (f" from {plan.backup.blob_name}" if plan.backup else ""))
    marks = {Outcome.PASS: "ok  ", Outcome.FAIL: "FAIL", Outcome.WARN: "warn", Outcome.SKIPPED: "skip"}
    for check in plan.checks:
        out.line(f"  [{marks[check.outcome]}] {check.name}: {check.message}")
        if check.outcome is Outcome.FAIL and check.remediation:
            out.line(f"         -> {check.remediation}")
    result: JsonObject = {"plan": plan.to_json(now=now), "dryRun": dry_run}
    if plan.refused:
        out.line("refused: nothing was changed")
        if job is not None:
            result["operation"] = job.public_view(now=now)
        out.result(result)
        return EXIT_REFUSED
    if dry_run or job is None:
        out.line("preflight passed; nothing was changed (dry run)")
        out.result(result)
        return EXIT_OK
    out.line(f"restore job {job.job_id} started")
    return _finish(use, job.job_id, args, out, extra=result)


def snapshot_restore(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    """``snapshot restore``: the checks at once, then the job (whose plan a dry run prints)."""
    body: JsonObject = {"target": args.target, "dryRun": bool(args.dry_run)}
    if args.source:
        body["source"] = args.source
    if args.items:
        body["items"] = list(args.items)
    if args.confirm:
        body["confirm"] = args.confirm
    request = parse_snapshot_restore_request(args.snapshot, body)
    started = use.snapshot_restorer().start(request, trigger=Trigger.CLI)
    out.line(f"snapshot restore {_short(started.source)} -> {_short(started.target)}"
             + (f" from {snapshot_id(started.snapshot)}" if started.snapshot else "")
             + (f", items {', '.join(started.items)}" if started.items else ", everything"))
    marks = {Outcome.PASS: "ok  ", Outcome.FAIL: "FAIL", Outcome.WARN: "warn", Outcome.SKIPPED: "skip"}
    for check in started.checks:
        out.line(f"  [{marks[check.outcome]}] {check.name}: {check.message}")
        if check.outcome is Outcome.FAIL and check.remediation:
            out.line(f"         -> {check.remediation}")
    if started.job is None:
        out.line("refused: nothing was changed")
        out.result({"start": started.to_json()})
        return EXIT_REFUSED
    out.line(f"snapshot restore job {started.job.job_id} started" + (" (dry run)" if request.dry_run else ""))
    code = _finish(use, started.job.job_id, args, out, extra={"start": started.to_json()})
    _print_restore_outcome(use.operations().get(started.job.job_id), request.dry_run, out)
    return code


def _print_restore_outcome(job: Job, dry_run: bool, out: Output) -> None:
    progress = job.config_restore
    if progress is not None and job.state.terminal:
        counts = ", ".join(f"{n} {action}" for action, n in progress.counts.items())
        out.line(f"  plan: {counts or 'nothing to do'}; {progress.unchanged} unchanged"
                 + (f"; {progress.kept} secret named values kept as they are" if progress.kept else ""))
        for line in progress.shown_steps if dry_run else []:
            out.line(f"    {line}")
        for problem in progress.problems:
            out.line(f"  blocked: {problem.get('item')}: {problem.get('message')}")
            out.line(f"         -> {problem.get('remediation')}")
        if not dry_run and progress.steps:
            out.line(f"  applied {progress.applied} of {progress.steps} steps ({progress.already} found done already)")


def prune(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    report = use.retention().run(service=args.service, dry_run=args.dry_run)
    marks = {PruneOutcome.KEPT: "keep", PruneOutcome.WOULD_DELETE: "DELETE", PruneOutcome.DELETED: "deleted",
             PruneOutcome.MISSING: "gone", PruneOutcome.SKIPPED_IMMUTABLE: "SKIPPED", PruneOutcome.FAILED: "FAILED"}
    for problem in report.problems:
        out.line(f"problem: {problem}")
    for inst in report.instances:
        posture = inst.instance.posture
        gfs = "".join(f", {name} {count}" for name, count in (("keepDaily", posture.keep_daily),
                                                               ("keepWeekly", posture.keep_weekly),
                                                               ("keepMonthly", posture.keep_monthly)) if count)
        where = f" copies in {inst.account}" if inst.account else ""
        out.line(f"{inst.instance.name} ({inst.instance.container}){where}: keepLast {posture.keep_last}, "
                 f"maxAgeDays {posture.max_age_days}{gfs}, {len(inst.results)} backup(s)")
        if inst.error is not None:
            out.line(f"  FAILED to read its backups: {inst.error.message}")
        for relabelled in inst.relabelled:
            out.line(f"  [{relabelled.outcome.value}] {relabelled.blob_name}  labelled before the catalog tag"
                     + (f": {relabelled.detail}" if relabelled.detail else ""))
        for result in inst.results:
            entry = result.decision.entry
            out.line(f"  [{marks[result.outcome]:<7}] {entry.blob_name}  {result.decision.reason.value}: "
                     f"{result.decision.why}")
            for text in filter(None, [result.detail, *result.sidecars_deleted, *result.sidecar_problems]):
                out.line(f"            {text}")
    totals = report.totals()
    if args.dry_run:
        out.line(f"dry run: {totals['wouldDelete']} backup(s) would be deleted, {totals['kept']} kept; "
                 "nothing was changed")
    else:
        out.line(f"{totals['deleted']} deleted, {totals['skippedImmutable']} skipped (immutable), "
                 f"{totals['missing']} already gone, {totals['failed']} failed, {totals['kept']} kept")
    out.result(report.to_json())
    return EXIT_FAILED if report.failed else EXIT_OK


# -- copies -----------------------------------------------------------------------------------------------
def copies(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    report = use.copies().catch_up(args.service, dry_run=args.dry_run)
    for problem in report.problems:
        out.line(f"problem: {problem}")
    for inst in report.instances:
        out.line(f"{inst.instance.name} ({inst.instance.container}) -> {report.account}: "
                 f"{inst.present} already copied, {len(inst.points)} to copy")
        if inst.error is not None:
            out.line(f"  FAILED to read a catalog: {inst.error.message}")
        for point in inst.points:
            out.line(f"  [{point.outcome.value:<10}] {point.entry.blob_name}  {point.detail or ''}".rstrip())
    totals = report.totals()
    if args.dry_run:
        out.line(f"dry run: {totals['would-copy']} recovery point(s) would be copied; nothing was changed")
    else:
        out.line(f"{totals['copied']} copied and verified, {totals['failed']} failed")
    out.result(report.to_json())
    return EXIT_FAILED if report.failed else EXIT_OK


# -- status -----------------------------------------------------------------------------------------------
def status(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    """The posture table, or (with a job ID) one job."""
    if args.job_id is None:
        if args.wait:
            raise InvalidRequestError("--wait follows a job: give its ID (apim-dr status <job-id> --wait)")
        return _posture(use, args, out)
    if args.service is not None:
        raise InvalidRequestError("--service selects instances of the posture table; omit it with a job ID")
    use.operations().get(args.job_id)
    return _finish(use, args.job_id, args, out)


def _posture(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    """The posture table (the same document as GET /api/status); exit code from the worst RPO state."""
    document = use.posture_status().build(args.service)
    rows = [_posture_row(view) for view in document.instances]
    headers = ["instance", "RPO", "newest restorable / target", "standby lag", "last drill", "open failures"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    out.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        out.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        out.line("no protected instances")
    for view in document.instances:
        rpo = view.rpo
        if rpo.state is not RpoState.OK and rpo.reason:
            out.line(f"{view.label}: {_state(rpo.state)}: {rpo.reason}")
        for failure in view.open_failures[:3]:
            out.line(f"{view.label}: open failure {failure.job_id} {failure.state.value} "
                     f"({failure.error_code}): {failure.remediation or failure.message or ''}"[:300])
    for problem in document.problems:
        out.line(f"problem: {problem}")
    out.result(document.to_json())
    states = {view.rpo.state for view in document.instances}
    if RpoState.BREACHED in states:
        return EXIT_FAILED
    if RpoState.UNKNOWN in states:
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _state(state: RpoState | None) -> str:
    return str(None if state is None else state.value)


def _posture_row(view: InstancePosture) -> list[str]:
    rpo = view.rpo
    newest = rpo.newest_restorable
    age = f"{newest.age_hours:.1f} h" if newest else "none"
    label = view.label + (f" ({view.service_name})" if view.alias else "")
    standby = view.standby
    if standby is None:
        lag = "-"
    else:
        if standby.lag_hours is not None:
            lag = f"{standby.lag_hours:.1f} h"
        else:
            lag = "never synced" if standby.sync else "sync off"
        if standby.state is not None:
            lag += f" ({standby.state.value})"
    drill = view.last_drill
    if drill is None:
        drill_text = "-"
    else:
        finished = iso_or_none(drill.finished_at) or ""
        drill_text = f"{drill.state.value if drill.state else '?'} {finished[:16]}".strip()
    return [label, _state(rpo.state), f"{age} / {rpo.target_hours} h", lag, drill_text, str(len(view.open_failures))]


# -- drills and standbys --------------------------------------------------------------------------------
def drills(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    history = use.drills().history(args.service)
    for drill in history:
        out.line(_drill_line(drill))
    if not history:
        out.line("no drills")
    out.result({"drills": [d.public_json() for d in history]})
    return EXIT_OK


def drill_start(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    runner = use.drills()
    drill = runner.start(args.instance, trigger=Trigger.CLI)
    out.line(f"drill {drill.job_id}: restoring {drill.backup} into {_short(drill.target)} "
             f"(RPO at drill time {drill.rpo_hours_at_drill} h)")
    if drill.running and args.wait and drill.job_id is not None:
        job = _follow(use, drill.job_id, args, out)
        # The worker that ended the job verified the drill, unless it was not this process: do it (idempotent).
        finished = runner.finish(job) if job.state.terminal else None  # the record as it stands now
        drill = finished if finished is not None else drill
    out.line(_drill_line(drill))
    _drill_details(drill, out)
    out.result({"drill": drill.public_json()})
    if drill.state is DrillPhase.SUCCEEDED or (drill.running and not args.wait):
        return EXIT_OK
    if drill.failed and drill.error is not None and drill.error.code == "PreflightFailed":
        return EXIT_REFUSED
    return EXIT_FAILED


def _short(resource_id: str | None) -> str:
    return str(resource_id or "").rsplit("/", 1)[-1]


def _drill_line(drill: DrillRecord) -> str:
    rto = f"{drill.rto_seconds:.0f} s" if drill.rto_seconds is not None else "-"
    rpo = f"{drill.rpo_hours_at_drill:.2f} h" if drill.rpo_hours_at_drill is not None else "-"
    state = str(drill.state.value if drill.state is not None else None).upper()
    return (f"{iso_or_none(drill.requested_at)}  {_short(drill.instance)} -> {_short(drill.target)}  {state:<8} "
            f"RTO {rto:>7}  RPO {rpo:>8}  {drill.job_id}")


def _drill_details(drill: DrillRecord, out: Output) -> None:
    if drill.verification is not None:
        for collection, part in drill.verification.parts():
            line = f"  {collection}: {len(part.found)} found of {len(part.expected)} expected"
            if part.missing:
                line += f"; missing {', '.join(part.missing[:10])}"
            if part.unexpected:
                line += f"; unexpected {', '.join(part.unexpected[:10])}"
            out.line(line)
    if drill.error is not None:
        out.line(f"  error: ({drill.error.code}) {drill.error.message}")
        if drill.error.remediation:
            out.line(f"  what to do: {drill.error.remediation}")


def standbys(use: UseCases, args: argparse.Namespace, out: Output) -> int:
    now = use.clock.now()
    records = use.standby_sync().standbys()
    for record in records:
        lag = record.lag_hours(now)
        lag_text = f"{lag:.2f} h" if lag is not None else "never synced"
        state = record.state.value if record.state is not None else None
        out.line(f"{_short(record.standby)} (primary {_short(record.primary)}): {state}, lag {lag_text}, "
                 f"last backup {record.backup}")
        if record.error is not None:
            out.line(f"  error: ({record.error.code}) {record.error.message}")
    if not records:
        out.line("no standby syncs")
    out.result({"standbys": [r.view_json(now) for r in records]})
    return EXIT_OK


# -- following a job --------------------------------------------------------------------------------------
def _finish(use: UseCases, job_id: str, args: argparse.Namespace, out: Output, *,
            extra: JsonObject | None = None) -> int:
    job = _follow(use, job_id, args, out) if getattr(args, "wait", False) else use.operations().get(job_id)
    now = use.clock.now()
    out.line(_describe(job, now))
    for line in _attempt_lines(job):
        out.line(line)
    if job.error_code:
        out.line(f"  error: ({job.error_code}) {job.error_message}")
        if job.remediation:
            out.line(f"  what to do: {job.remediation}")
    out.result({**(extra or {}), "operation": job.public_view(now=now)})
    if job.state in (JobState.FAILED, JobState.TIMED_OUT):
        return EXIT_FAILED
    if job.state is JobState.REFUSED:
        return EXIT_REFUSED
    return EXIT_OK


def _describe(job: Job, now: Any) -> str:
    text = f"{job.kind.value} {job.job_id}: {job.state.value}, elapsed {round(job.elapsed_seconds(now), 1):.0f} s"
    if job.duration_seconds is not None:
        text += f", operation took {round(job.duration_seconds, 1):.0f} s"
    if job.kind.value == "backup" and job.state is JobState.SUCCEEDED:
        text += f", blob {job.container}/{job.blob_name}"
    return text


def _attempt_lines(job: Job) -> list[str]:
    """One line per operation of a job that ran more than one (a backup tried again), and pending follow-ups."""
    lines = []
    if len(job.attempts) > 1 or job.attempt > 1:
        for attempt in job.attempts:
            error = f": ({attempt.error_code}) {attempt.error_message}" if attempt.error_code else ""
            lines.append(f"  attempt {attempt.number}/{job.max_attempts} {attempt.outcome.value}, blob "
                         f"{attempt.blob_name}{error}"[:400])
    if job.follow_ups:
        lines.append(f"  after its end, still to do: {', '.join(job.follow_ups)}")
    return lines


def _follow(use: UseCases, job_id: str, args: argparse.Namespace, out: Output) -> Job:
    """Poll the job row until it ends; step in when its next step is overdue."""
    takeover = max(0.0, float(args.takeover_after))
    worker = use.worker()
    operations = use.operations()
    while True:
        job = operations.get(job_id)
        if job.state.terminal:
            return job
        now = use.clock.now()
        due = job.next_action_at or now
        wait_for = (due - now).total_seconds()
        waiting = f", waiting for {job.wait_reason}" if job.wait_reason else ""
        out.progress(f"{job.kind.value} {job.service_name}: {job.state.value}, elapsed "
                     f"{job.elapsed_seconds(now):.0f} s, polls {job.polls}, next step in {max(0, wait_for):.0f} s"
                     f"{waiting}")
        if wait_for <= -takeover:
            worker.process(WorkMessage.resume(job))
            continue
        time.sleep(min(max(wait_for + takeover, 0.5), 5.0))
