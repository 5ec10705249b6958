"""``apim-dr``: the operator CLI. Works when the Function App (or its region) is down.

It reads the same settings as the Function App (environment variables, or ``--settings``
pointing at a ``local.settings.json``), authenticates with ``DefaultAzureCredential`` (so
``az login`` works) and talks to ARM and storage directly through ``dr_core`` — the same
code the Functions run. With ``--wait`` it follows the job and, if no Function App moves it
on time, moves it itself (every step is conditional, so the two never double up).

Exit codes: 0 done/succeeded/passed, 1 the job failed or timed out (prune: a deletion failed), 2 usage, 3 refused by
preflight, 4 configuration error, 5 not found, 6 Azure unreachable (ARM or storage: no
connection, token failure, 5xx), 130 interrupted. One table in :mod:`dr_core.kernel.errors` maps
errors to them. ``apim-dr status`` without a job ID (the posture table) exits 0 when every
instance is within its RPO target (ok or at-risk), 1 when any is breached, 6 when none is
breached but some instance's catalog could not be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dr_core.kernel.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    DrError,
    exit_code,
)

if TYPE_CHECKING:
    from dr_core.context import DrContext
    from dr_core.jobs.job import Job

__all__ = ["main"]

logger = logging.getLogger(__name__)


class _Output:
    """Live progress on a terminal, plain lines when piped, nothing but the result with --json."""

    def __init__(self, stream: IO[str], *, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.tty = stream.isatty() and not as_json
        self._last_plain = ""
        self._live = False

    def progress(self, text: str) -> None:
        if self.as_json:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._live = True
        elif text != self._last_plain:
            self.stream.write(text + "\n")
            self._last_plain = text
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.as_json:
            return
        if self._live:
            self.stream.write("\n")
            self._live = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def result(self, data: Any) -> None:
        if self.as_json:
            self.stream.write(json.dumps(data, indent=2, default=str) + "\n")
            self.stream.flush()


def _load_settings_file(path: str) -> None:
    values = json.loads(Path(path).read_text(encoding="utf-8")).get("Values", {})
    for key, value in values.items():
        os.environ.setdefault(str(key), str(value))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apim-dr", description="Azure API Management backup and restore.",
        epilog="Exit codes: 0 done/succeeded, 1 failed or timed out (status: an instance's RPO is breached), "
               "2 usage, 3 refused by preflight, 4 configuration error, 5 not found, 6 Azure unreachable "
               "(status: an instance's catalog could not be read), 130 interrupted.")
    parser.add_argument("--settings", help="a local.settings.json whose Values fill unset environment variables")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)

    backups = sub.add_parser("backups", help="the backup catalog")
    backups_sub = backups.add_subparsers(dest="action", required=True)
    listing = backups_sub.add_parser("list", help="backups of one instance, newest first")
    listing.add_argument("--service", required=True, help="resource ID, alias or service name")
    relabel = backups_sub.add_parser(
        "relabel", help="give backups labelled before the catalog tag that tag, so the catalog finds them",
        description="After upgrading from a version without the apimdr_catalog tag, the catalog, the restore "
                    "preflight and the RPO monitor do not see older backups until they get it. The daily retention "
                    "run adds it; this does it now. Tags only (immutability allows them); nothing is deleted.")
    relabel.add_argument("--service", help="one protected instance (resource ID, alias or service name); default: all")
    relabel.add_argument("--dry-run", action="store_true", help="show what would be relabelled; change nothing")

    backup = sub.add_parser("backup", help="on-demand backup")
    backup_sub = backup.add_subparsers(dest="action", required=True)
    start = backup_sub.add_parser("start", help="start a backup of one protected instance")
    start.add_argument("--instance", required=True, help="resource ID, alias or service name")
    _wait_options(start)

    for name, helptext in (("restore", "restore a backup into an instance"),
                           ("preflight", "check a restore without doing anything")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--target", required=True, help="resource ID, alias or service name of the target")
        cmd.add_argument("--source", help="the instance whose backup to restore (default: the target's primary)")
        cmd.add_argument("--backup", default="latest", help='"latest" (default) or a backup blob name')
        cmd.add_argument("--confirm", help="the target's name, required to restore over a primary or the source")
        if name == "restore":
            cmd.add_argument("--dry-run", action="store_true", help="show the plan and preflight; change nothing")
            _wait_options(cmd)

    prune = sub.add_parser("prune", help="delete backups past their instance's retention (keepLast, maxAgeDays)")
    prune.add_argument("--service", help="one protected instance (resource ID, alias or service name); default: all")
    prune.add_argument("--dry-run", action="store_true", help="show each decision and its reason; delete nothing")
    _json_option(prune)

    status = sub.add_parser(
        "status", help="the posture of every protected instance, or one job",
        description="Without a job ID: each protected instance's RPO state, newest restorable backup, standby "
                    "lag, last drill and open failures. Exit code 0 when every instance is within its RPO target "
                    "(ok or at-risk), 1 when any is breached, 6 when none is breached but some catalog could not "
                    "be read (unknown). With a job ID: that job (exit 0 succeeded or still running, 1 failed or "
                    "timed out, 3 refused).")
    status.add_argument("job_id", nargs="?", help="a job ID (backup-... or restore-...); omit for the posture table")
    status.add_argument("--service", help="only this instance (resource ID, alias or service name)")
    _wait_options(status)
    _json_option(status)

    drills = sub.add_parser("drills", help="restore drill history, newest first")
    drills.add_argument("--service", help="only drills of this instance (resource ID, alias or service name)")
    _json_option(drills)
    drill = sub.add_parser("drill", help="restore drills")
    drill_sub = drill.add_subparsers(dest="action", required=True)
    drill_start = drill_sub.add_parser("start", help="restore the latest verifiable backup into the drill target "
                                                     "and verify it")
    drill_start.add_argument("--instance", required=True, help="resource ID, alias or service name of the primary")
    _wait_options(drill_start)
    _json_option(drill_start)

    standbys = sub.add_parser("standbys", help="standby sync: state and lag of each synced standby")
    _json_option(standbys)
    return parser


def _json_option(cmd: argparse.ArgumentParser) -> None:
    # Also accepted after the command; SUPPRESS keeps a --json given before it.
    cmd.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")


def _wait_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--wait", action="store_true", help="follow the job until it ends")
    cmd.add_argument("--takeover-after", type=float, default=10.0, metavar="SECONDS",
                     help="move the job on itself when its next step is this late (default 10)")


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = _Output(stdout or sys.stdout, as_json=args.json)
    if args.settings:
        try:
            _load_settings_file(args.settings)
        except (OSError, ValueError) as e:
            out.line(f"error: cannot read {args.settings}: {e}")
            out.result({"error": {"code": "SettingsFileUnreadable", "message": str(e)}})
            return EXIT_CONFIG
    from dr_core.kernel.settings import SettingsError

    try:
        return _run(args, out)
    except SettingsError as e:
        out.line(str(e))
        out.result({"error": {"code": "ConfigurationError", "problems": e.problems}})
        return EXIT_CONFIG
    except DrError as e:
        out.line(f"error: {e.message}")
        if e.remediation:
            out.line(f"  what to do: {e.remediation}")
        out.result(e.to_json())
        return exit_code(e)
    except KeyboardInterrupt:
        out.line("interrupted; the job goes on (follow it with `apim-dr status <id> --wait`)")
        return EXIT_INTERRUPTED
    except Exception as e:
        # A defect: say so in one line (no traceback on an operator's terminal during an incident).
        logger.debug("unexpected error", exc_info=True)
        message = " ".join(str(e).split())[:300]
        out.line(f"error: unexpected {type(e).__name__}: {message} (a defect in apim-dr; please report it)")
        out.result({"error": {"code": "InternalError", "message": f"{type(e).__name__}: {message}"}})
        return EXIT_FAILED


def _run(args: argparse.Namespace, out: _Output) -> int:
    from dr_core.context import get_context

    ctx = get_context()
    if args.command == "backups" and args.action == "relabel":
        return _relabel(ctx, args, out)
    if args.command == "backups":
        response = ctx.api().list_backups(args.service)
        body = response.body
        assert isinstance(body, dict)
        for entry in body["backups"]:
            flag = "restorable" if entry["restorable"] else f"NOT restorable: {entry['notRestorableBecause']}"
            out.line(f"{entry['createdAt']}  {entry['sku']:<10} {entry['sizeBytes'] or '?':>10} B  "
                     f"{entry['blobName']}  ({flag})")
        if not body["backups"]:
            out.line("no backups")
        out.result(body)
        return EXIT_OK
    if args.command == "backup":
        job, created = ctx.planner().request_backup(args.instance, trigger="cli")
        out.line(f"backup job {job.job_id} {'created' if created else 'already exists'}")
        return _finish(ctx, job.job_id, args, out)
    if args.command in ("restore", "preflight"):
        return _restore(ctx, args, out)
    if args.command == "prune":
        return _prune(ctx, args, out)
    if args.command == "status":
        from dr_core.jobs.job import parse_job_id
        from dr_core.kernel.errors import InvalidRequestError, NotFoundError

        if args.job_id is None:
            if args.wait:
                raise InvalidRequestError("--wait follows a job: give its ID (apim-dr status <job-id> --wait)")
            return _posture(ctx, args, out)
        if args.service is not None:
            raise InvalidRequestError("--service selects instances of the posture table; omit it with a job ID")
        try:
            parse_job_id(args.job_id)
        except ValueError as e:
            raise InvalidRequestError(str(e)) from e
        if ctx.store.get(args.job_id) is None:
            raise NotFoundError(f"no job {args.job_id}")
        return _finish(ctx, args.job_id, args, out)
    if args.command == "drills":
        return _drills(ctx, args, out)
    if args.command == "drill":
        return _drill_start(ctx, args, out)
    if args.command == "standbys":
        return _standbys(ctx, out)
    return EXIT_USAGE


def _posture(ctx: DrContext, args: argparse.Namespace, out: _Output) -> int:
    """The posture table (the same body as GET /api/status); exit code from the worst RPO state."""
    response = ctx.api().get_status(args.service)
    body = response.body
    assert isinstance(body, dict)
    rows = [_posture_row(view) for view in body["instances"]]
    headers = ["instance", "RPO", "newest restorable / target", "standby lag", "last drill", "open failures"]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    out.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        out.line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        out.line("no protected instances")
    for view in body["instances"]:
        rpo = view["rpo"]
        if rpo["state"] != "ok" and rpo.get("reason"):
            out.line(f"{_instance_label(view)}: {rpo['state']}: {rpo['reason']}")
        for failure in view["openFailures"][:3]:
            out.line(f"{_instance_label(view)}: open failure {failure['jobId']} {failure['state']} "
                     f"({failure['errorCode']}): {failure['remediation'] or failure['message'] or ''}"[:300])
    for problem in body["problems"]:
        out.line(f"problem: {problem}")
    out.result(body)
    states = {view["rpo"]["state"] for view in body["instances"]}
    if "breached" in states:
        return EXIT_FAILED
    if "unknown" in states:
        return EXIT_UNAVAILABLE
    return EXIT_OK


def _instance_label(view: dict[str, Any]) -> str:
    return str(view["alias"] or view["serviceName"])


def _posture_row(view: dict[str, Any]) -> list[str]:
    rpo = view["rpo"]
    newest = rpo.get("newestRestorable")
    age = f"{newest['ageHours']:.1f} h" if newest else "none"
    label = _instance_label(view)
    if view["alias"]:
        label += f" ({view['serviceName']})"
    standby = view.get("standby")
    if standby is None:
        lag = "-"
    else:
        if standby.get("lagHours") is not None:
            lag = f"{standby['lagHours']:.1f} h"
        else:
            lag = "never synced" if standby.get("sync") else "sync off"
        if standby.get("state"):
            lag += f" ({standby['state']})"
    drill = view.get("lastDrill")
    drill_text = "-" if drill is None else f"{drill.get('state') or '?'} {(drill.get('finishedAt') or '')[:16]}".strip()
    return [label, str(rpo["state"]), f"{age} / {rpo['targetHours']} h", lag, drill_text,
            str(len(view["openFailures"]))]


def _drill_line(drill: dict[str, Any]) -> str:
    target = str(drill.get("target") or "").rsplit("/", 1)[-1]
    instance = str(drill.get("instance") or "").rsplit("/", 1)[-1]
    rto = f"{drill['rtoSeconds']:.0f} s" if drill.get("rtoSeconds") is not None else "-"
    rpo = f"{drill['rpoHoursAtDrill']:.2f} h" if drill.get("rpoHoursAtDrill") is not None else "-"
    return (f"{drill.get('requestedAt')}  {instance} -> {target}  {str(drill.get('state')).upper():<8} "
            f"RTO {rto:>7}  RPO {rpo:>8}  {drill.get('jobId')}")


def _drill_details(drill: dict[str, Any], out: _Output) -> None:
    for collection, part in (drill.get("verification") or {}).items():
        line = f"  {collection}: {len(part.get('found') or [])} found of {len(part.get('expected') or [])} expected"
        if part.get("missing"):
            line += f"; missing {', '.join(part['missing'][:10])}"
        if part.get("unexpected"):
            line += f"; unexpected {', '.join(part['unexpected'][:10])}"
        out.line(line)
    error = drill.get("error")
    if error:
        out.line(f"  error: ({error.get('code')}) {error.get('message')}")
        if error.get("remediation"):
            out.line(f"  what to do: {error['remediation']}")


def _drills(ctx: DrContext, args: argparse.Namespace, out: _Output) -> int:
    drills = ctx.drills().history(args.service)
    for drill in drills:
        out.line(_drill_line(drill))
    if not drills:
        out.line("no drills")
    out.result({"drills": drills})
    return EXIT_OK


def _drill_start(ctx: DrContext, args: argparse.Namespace, out: _Output) -> int:
    from dr_core.drills.drills import public_view

    runner = ctx.drills()
    drill = public_view(runner.start(args.instance, trigger="cli"))
    out.line(f"drill {drill['jobId']}: restoring {drill['backup']} into "
             f"{str(drill['target']).rsplit('/', 1)[-1]} (RPO at drill time {drill['rpoHoursAtDrill']} h)")
    if drill["state"] == "running" and args.wait:
        job = _follow(ctx, drill["jobId"], args, out)
        # The worker that ended the job verified the drill, unless it was not this process: do it (idempotent).
        finished = runner.finish(job) if job.state.terminal else None  # the record as it stands now
        drill = public_view(finished) if finished is not None else drill
    out.line(_drill_line(drill))
    _drill_details(drill, out)
    out.result({"drill": drill})
    if drill["state"] == "passed" or (drill["state"] == "running" and not args.wait):
        return EXIT_OK
    if drill["state"] == "failed" and (drill.get("error") or {}).get("code") == "PreflightFailed":
        return EXIT_REFUSED
    return EXIT_FAILED


def _standbys(ctx: DrContext, out: _Output) -> int:
    views = ctx.standby_sync().standbys()
    for view in views:
        lag = f"{view['lagHours']:.2f} h" if view["lagHours"] is not None else "never synced"
        out.line(f"{str(view['standby']).rsplit('/', 1)[-1]} (primary {str(view['primary']).rsplit('/', 1)[-1]}): "
                 f"{view['state']}, lag {lag}, last backup {view['backup']}")
        if view.get("error"):
            out.line(f"  error: ({view['error'].get('code')}) {view['error'].get('message')}")
    if not views:
        out.line("no standby syncs")
    out.result({"standbys": views})
    return EXIT_OK


def _restore(ctx: DrContext, args: argparse.Namespace, out: _Output) -> int:
    from dr_core.restore.restorer import Outcome, RestoreRequest

    dry_run = args.command == "preflight" or args.dry_run
    request = RestoreRequest(target=args.target, source=args.source, backup=args.backup, dry_run=dry_run,
                             confirm=args.confirm)
    plan, job = ctx.restorer().start(request, trigger="cli")
    now = ctx.clock.now()
    out.line(f"restore {plan.source.service_name} -> {plan.target.service_name}"
             + (f" from {plan.backup.blob_name}" if plan.backup else ""))
    marks = {Outcome.PASS: "ok  ", Outcome.FAIL: "FAIL", Outcome.WARN: "warn", Outcome.SKIPPED: "skip"}
    for check in plan.checks:
        out.line(f"  [{marks[check.outcome]}] {check.name}: {check.message}")
        if check.outcome is Outcome.FAIL and check.remediation:
            out.line(f"         -> {check.remediation}")
    result: dict[str, Any] = {"plan": plan.to_json(now=now), "dryRun": dry_run}
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
    return _finish(ctx, job.job_id, args, out, extra=result)


def _prune(ctx: DrContext, args: argparse.Namespace, out: _Output) -> int:
    from dr_core.retention.pruner import Outcome

    report = ctx.retention().run(service=args.service, dry_run=args.dry_run)
    marks = {Outcome.KEPT: "keep", Outcome.WOULD_DELETE: "DELETE", Outcome.DELETED: "deleted",
             Outcome.MISSING: "gone", Outcome.SKIPPED_IMMUTABLE: "SKIPPED", Outcome.FAILED: "FAILED"}
    for problem in report.problems:
        out.line(f"problem: {problem}")
    for inst in report.instances:
        posture = inst.instance.posture
        out.line(f"{inst.instance.name} ({inst.instance.container}): keepLast {posture.keep_last}, "
                 f"maxAgeDays {posture.max_age_days}, {len(inst.results)} backup(s)")
        if inst.error is not None:
            out.line(f"  FAILED to read its backups: {inst.error.message}")
        for relabelled in inst.relabelled:
            out.line(f"  [{relabelled.outcome.value}] {relabelled.blob_name}  labelled before the catalog tag"
                     + (f": {relabelled.detail}" if relabelled.detail else ""))
        for result in inst.results:
            entry = result.decision.entry
            out.line(f"  [{marks[result.outcome]:<7}] {entry.blob_name}  {result.decision.why}")
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


def _relabel(ctx: DrContext, args: argparse.Namespace, out: _Output) -> int:
    from dr_core.catalog.relabel import RelabelOutcome, relabel_older_backups

    selected = ctx.resolver().select(args.service)
    instances, problems = selected.instances, selected.problems
    for problem in problems:
        out.line(f"problem: {problem}")
    report: list[dict[str, Any]] = []
    failed = 0
    for instance in instances:
        known = {e.blob_name for e in ctx.backups.find(instance.container, instance.name)}
        results = relabel_older_backups(ctx.backups, instance.container, instance.name, known=known,
                                        dry_run=args.dry_run)
        failed += sum(1 for r in results if r.outcome is RelabelOutcome.FAILED)
        out.line(f"{instance.name} ({instance.container}): {len(known)} catalogued, {len(results)} labelled before "
                 "the catalog tag")
        for result in results:
            out.line(f"  [{result.outcome.value}] {result.blob_name}" + (f"  {result.detail}" if result.detail else ""))
        report.append({"instance": str(instance.resource_id), "catalogued": len(known),
                       "relabelled": [r.to_json() for r in results]})
    if args.dry_run:
        out.line("dry run: nothing was changed")
    out.result({"dryRun": args.dry_run, "instances": report, "problems": problems})
    return EXIT_FAILED if failed else EXIT_OK


def _finish(ctx: DrContext, job_id: str, args: argparse.Namespace, out: _Output, *,
            extra: dict[str, Any] | None = None) -> int:
    from dr_core.jobs.job import JobState

    job = _follow(ctx, job_id, args, out) if getattr(args, "wait", False) else ctx.store.get(job_id)
    assert job is not None
    view = job.public_view(now=ctx.clock.now())
    out.line(_describe(view))
    if view.get("error"):
        out.line(f"  error: ({view['error']['code']}) {view['error']['message']}")
        if view["error"].get("remediation"):
            out.line(f"  what to do: {view['error']['remediation']}")
    out.result({**(extra or {}), "operation": view})
    if job.state in (JobState.FAILED, JobState.TIMED_OUT):
        return EXIT_FAILED
    if job.state is JobState.REFUSED:
        return EXIT_REFUSED
    return EXIT_OK


def _describe(view: dict[str, Any]) -> str:
    text = f"{view['kind']} {view['id']}: {view['state']}, elapsed {view['elapsedSeconds']:.0f} s"
    if view.get("durationSeconds") is not None:
        text += f", operation took {view['durationSeconds']:.0f} s"
    if view["kind"] == "backup" and view["state"] == "Succeeded":
        text += f", blob {view['backup']['container']}/{view['backup']['blobName']}"
    return text


def _follow(ctx: DrContext, job_id: str, args: argparse.Namespace, out: _Output) -> Job:
    """Poll the job row until it ends; step in when its next step is overdue."""
    from dr_core.jobs.job import JobState
    from dr_core.jobs.messages import WorkMessage

    takeover = max(0.0, float(args.takeover_after))
    worker = ctx.worker()
    while True:
        job = ctx.store.get(job_id)
        assert job is not None
        if job.state.terminal:
            return job
        now = ctx.clock.now()
        due = job.next_action_at or now
        wait_for = (due - now).total_seconds()
        waiting = f", waiting for {job.wait_reason}" if job.wait_reason else ""
        out.progress(f"{job.kind.value} {job.service_name}: {job.state.value}, elapsed "
                     f"{job.elapsed_seconds(now):.0f} s, polls {job.polls}, next step in {max(0, wait_for):.0f} s"
                     f"{waiting}")
        if wait_for <= -takeover:
            message = (WorkMessage("poll", job=job.job_id, seq=job.poll_seq) if job.state is JobState.RUNNING
                       else WorkMessage("start", job=job.job_id))
            worker.process(message)
            continue
        time.sleep(min(max(wait_for + takeover, 0.5), 5.0))


if __name__ == "__main__":
    sys.exit(main())
