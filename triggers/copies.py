"""Copies trigger: the hourly catch-up of copies to the second account (what a backup's follower missed)."""

from __future__ import annotations

import azure.functions as func

from dr_core.kernel.settings import COPY_SCHEDULE

from .invocation import invocation

bp = func.Blueprint()


@bp.function_name("copy_backups")
@bp.timer_trigger(schedule=COPY_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def copy_backups(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        dr = get_context()
        if dr.settings.copy_account is None:  # no copy account configured: nothing to do
            return
        dr.copies().run_scheduled()
