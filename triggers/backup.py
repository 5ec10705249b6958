"""Backup triggers: the scheduled planner, the watchdog, the queue worker and the HTTP API.

Each function only translates its trigger into a ``dr_core`` call. SDK imports happen inside
``dr_core`` on first use, so importing this module stays cheap (cold start).
"""

from __future__ import annotations

import logging

import azure.functions as func

from dr_core.kernel.settings import POLL_QUEUE, WATCHDOG_SCHEDULE, WORK_QUEUE

from .http_adapter import base_url, respond
from .invocation import invocation

bp = func.Blueprint()
logger = logging.getLogger(__name__)



@bp.function_name("plan_scheduled_backups")
@bp.timer_trigger(schedule="%BACKUP_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def plan_scheduled_backups(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().planner().plan_scheduled(past_due=timer.past_due)


@bp.function_name("requeue_stalled_jobs")
@bp.timer_trigger(schedule=WATCHDOG_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def requeue_stalled_jobs(timer: func.TimerRequest, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().watchdog().requeue_stalled()


@bp.function_name("work_on_job")
@bp.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def work_on_job(msg: func.QueueMessage, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().worker().handle(msg.get_body().decode("utf-8", "replace"))


@bp.function_name("poll_job")
@bp.queue_trigger(arg_name="msg", queue_name=POLL_QUEUE, connection="AzureWebJobsStorage")
def poll_job(msg: func.QueueMessage, context: func.Context) -> None:
    from dr_core.context import get_context

    with invocation(context):
        get_context().worker().handle(msg.get_body().decode("utf-8", "replace"))


@bp.function_name("start_backup")
@bp.route(route="backups", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def start_backup(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.post_backup(req.get_body(), base_url=base_url(req)), context)


@bp.function_name("get_operation")
@bp.route(route="operations/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_operation(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return respond(lambda api: api.get_operation(req.route_params.get("id")), context)
