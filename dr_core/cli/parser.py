"""The ``apim-dr`` command line: every command, its options, and the function that runs it (``run``)."""

from __future__ import annotations

import argparse

from . import commands

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apim-dr", description="Azure API Management backup and restore.",
        epilog="Exit codes: 0 done/succeeded, 1 failed or timed out (status: an instance's RPO is breached), "
               "2 usage, 3 refused by preflight, 4 configuration error, 5 not found, 6 Azure unreachable "
               "(status: an instance's catalog could not be read), 130 interrupted.")
    parser.add_argument("--settings", help="a local.settings.json whose Values fill unset environment variables")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    sub = parser.add_subparsers(dest="command", required=True)
    _catalog_commands(sub)
    _job_commands(sub)
    _status_command(sub)
    _continuity_commands(sub)
    _snapshot_restore_command(sub)
    return parser


Commands = argparse._SubParsersAction  # the type of add_subparsers()' result


def _catalog_commands(sub: Commands) -> None:
    backups = sub.add_parser("backups", help="the backup catalog")
    backups_sub = backups.add_subparsers(dest="action", required=True)
    listing = backups_sub.add_parser("list", help="backups of one instance, newest first")
    listing.add_argument("--service", required=True, help="resource ID, alias or service name")
    listing.set_defaults(run=commands.backups_list)
    relabel = backups_sub.add_parser(
        "relabel", help="give backups labelled before the catalog tag that tag, so the catalog finds them",
        description="After upgrading from a version without the apimdr_catalog tag, the catalog, the restore "
                    "preflight and the RPO monitor do not see older backups until they get it. The daily retention "
                    "run adds it; this does it now. Tags only (immutability allows them); nothing is deleted.")
    relabel.add_argument("--service", help="one protected instance (resource ID, alias or service name); default: all")
    relabel.add_argument("--dry-run", action="store_true", help="show what would be relabelled; change nothing")
    relabel.set_defaults(run=commands.backups_relabel)


def _job_commands(sub: Commands) -> None:
    backup = sub.add_parser("backup", help="on-demand backup")
    backup_sub = backup.add_subparsers(dest="action", required=True)
    start = backup_sub.add_parser("start", help="start a backup of one protected instance")
    start.add_argument("--instance", required=True, help="resource ID, alias or service name")
    _wait_options(start)
    start.set_defaults(run=commands.backup_start)

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
        cmd.set_defaults(run=commands.restore, preflight_only=name == "preflight")

    prune = sub.add_parser("prune", help="delete backups past their instance's retention (keepLast, maxAgeDays)")
    prune.add_argument("--service", help="one protected instance (resource ID, alias or service name); default: all")
    prune.add_argument("--dry-run", action="store_true", help="show each decision and its reason; delete nothing")
    _json_option(prune)
    prune.set_defaults(run=commands.prune)


def _status_command(sub: Commands) -> None:
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
    status.set_defaults(run=commands.status)


def _continuity_commands(sub: Commands) -> None:
    drills = sub.add_parser("drills", help="restore drill history, newest first")
    drills.add_argument("--service", help="only drills of this instance (resource ID, alias or service name)")
    _json_option(drills)
    drills.set_defaults(run=commands.drills)
    drill = sub.add_parser("drill", help="restore drills")
    drill_sub = drill.add_subparsers(dest="action", required=True)
    drill_start = drill_sub.add_parser("start", help="restore the latest verifiable backup into the drill target "
                                                     "and verify it")
    drill_start.add_argument("--instance", required=True, help="resource ID, alias or service name of the primary")
    _wait_options(drill_start)
    _json_option(drill_start)
    drill_start.set_defaults(run=commands.drill_start)

    standbys = sub.add_parser("standbys", help="standby sync: state and lag of each synced standby")
    _json_option(standbys)
    standbys.set_defaults(run=commands.standbys)

    copies = sub.add_parser(
        "copies", help="copy to the second account what it lacks (what the hourly catch-up does)",
        description="Compares each copied instance's catalog in the backup account with its catalog in the copy "
                    "account (APIM_DR_COPY_STORAGE_ACCOUNT) and copies, verifies and catalogues every restorable "
                    "backup that has no copy yet, server-side. Exit code 1 if a copy failed.")
    copies.add_argument("--service", help="one protected instance (resource ID, alias or service name); default: all")
    copies.add_argument("--dry-run", action="store_true", help="show what would be copied; copy nothing")
    _json_option(copies)
    copies.set_defaults(run=commands.copies)


def _snapshot_restore_command(sub: Commands) -> None:
    snapshot = sub.add_parser("snapshot", help="configuration snapshots: restore")
    snapshot_sub = snapshot.add_subparsers(dest="action", required=True)
    restore = snapshot_sub.add_parser(
        "restore", help="restore a configuration snapshot, whole or chosen items, into an instance of any tier",
        description="Checks at once (the snapshot, the items, the target, a confirmation for a primary or the "
                    "snapshot's own instance, no other restore running into the target), then a job reads the "
                    "target, plans creates, updates and deletes in dependency order, and applies them with If-Match. "
                    "A dry run ends with the plan and changes nothing.")
    restore.add_argument("--target", required=True, help="resource ID, alias or service name of the target")
    restore.add_argument("--snapshot", default="latest",
                         help='"latest" (default: the source\'s newest) or a snapshot ID such as '
                              "apim-contoso-prod-20261207T020000Z")
    restore.add_argument("--source", help="the instance the snapshot is of (default: the target)")
    restore.add_argument("--item", action="append", dest="items", metavar="ITEM",
                         help="restore only this item and what is below it (repeatable), e.g. apis/echo-api, "
                              "products/starter, named-values/backend-url")
    restore.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    restore.add_argument("--confirm", help="the target's name, required to restore into a primary or the snapshot's "
                                           "own instance")
    _wait_options(restore)
    _json_option(restore)
    restore.set_defaults(run=commands.snapshot_restore)


def _json_option(cmd: argparse.ArgumentParser) -> None:
    # Also accepted after the command; SUPPRESS keeps a --json given before it.
    cmd.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")


def _wait_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--wait", action="store_true", help="follow the job until it ends")
    cmd.add_argument("--takeover-after", type=float, default=10.0, metavar="SECONDS",
                     help="move the job on itself when its next step is this late (default 10)")
