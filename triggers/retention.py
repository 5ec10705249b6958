"""Retention trigger: the daily prune of backups past their instance's retention (keepLast, maxAgeDays)."""

from __future__ import annotations

import azure.functions as func

from dr_core.kernel.settings import RETENTION_SCHEDULE

from .invocation import invocation

bp = func.Blueprint()


@bp.function_name("prune_backups")
@bp.timer_trigger(schedule=RETENTION_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def prune_backups(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().retention().run_scheduled()
