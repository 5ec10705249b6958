"""Continuity triggers: standby sync catch-up, restore drills, and the drill history API."""

from __future__ import annotations

import azure.functions as func

from dr_core.kernel.settings import DRILL_SCHEDULE, STANDBY_SYNC_SCHEDULE

from .http_adapter import base_url, respond
from .invocation import invocation

bp = func.Blueprint()



@bp.function_name("sync_standbys")
@bp.timer_trigger(schedule=STANDBY_SYNC_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def sync_standbys(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().standby_sync().catch_up()


@bp.function_name("run_drills")
@bp.timer_trigger(schedule=DRILL_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def run_drills(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().drills().run_due()


@bp.function_name("list_drills")
@bp.route(route="drills", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_drills(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.list_drills(req.params.get("service")), context)


@bp.function_name("start_drill")
@bp.route(route="drills", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def start_drill(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.post_drill(req.get_body(), base_url=base_url(req)), context)
