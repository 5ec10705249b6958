"""Retention trigger: the daily prune of backups past their instance's retention (keepLast, maxAgeDays)."""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()

# Daily at 03:30 UTC: after the default 02:00 backups have finished, so each instance's newest backup
# counts among those it keeps. A fixed schedule: pruning more often frees nothing (ages move by days).
RETENTION_SCHEDULE = "0 30 3 * * *"


@bp.function_name("prune_backups")
@bp.timer_trigger(schedule=RETENTION_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def prune_backups(timer: func.TimerRequest) -> None:
    from dr_core.context import get_context

    get_context().retention().run_scheduled()
