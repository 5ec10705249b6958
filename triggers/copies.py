"""Copies trigger: the hourly catch-up of copies to the second account (what a backup's follower missed)."""

from __future__ import annotations

import azure.functions as func

from dr_core.kernel.settings import COPY_SCHEDULE

bp = func.Blueprint()


@bp.function_name("copy_backups")
@bp.timer_trigger(schedule=COPY_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def copy_backups(timer: func.TimerRequest) -> None:
    from dr_core.context import get_context

    context = get_context()
    if context.settings.copy_account is None:  # no copy account configured: nothing to do
        return
    context.copies().run_scheduled()
