"""Posture triggers: the RPO monitor's timer and the status endpoint."""

from __future__ import annotations

import azure.functions as func

from dr_core.kernel.settings import RPO_SCHEDULE

from .http_adapter import respond
from .invocation import invocation

bp = func.Blueprint()



@bp.function_name("check_rpo")
@bp.timer_trigger(schedule=RPO_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def check_rpo(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().rpo_monitor().check_all()


@bp.function_name("get_status")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_status(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.get_status(req.params.get("service")), context)
