"""Posture triggers: the RPO monitor's timer and the status endpoint."""

from __future__ import annotations

import azure.functions as func

from .http_adapter import respond

bp = func.Blueprint()

# Every 15 minutes: a breach is noticed within a quarter of an hour of the newest backup crossing
# its target, for one catalog query per instance per run. Recoveries come sooner: a successful
# backup re-checks its instance at once (dr_core.posture.rpo.RpoFollower); this timer catches up on anything
# that path missed.
RPO_SCHEDULE = "0 */15 * * * *"


@bp.function_name("check_rpo")
@bp.timer_trigger(schedule=RPO_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def check_rpo(timer: func.TimerRequest) -> None:
    from dr_core.context import get_context

    get_context().rpo_monitor().check_all()


@bp.function_name("get_status")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_status(req: func.HttpRequest) -> func.HttpResponse:
    return respond(lambda api: api.get_status(req.params.get("service")))
