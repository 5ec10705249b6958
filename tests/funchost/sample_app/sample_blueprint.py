"""The sample functions: one of each trigger the stand-in supports, plus failure cases."""

import asyncio
import json
import logging
import time

import azure.functions as func
import sample_steps

bp = func.Blueprint()


@bp.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def sample_timer(timer: func.TimerRequest) -> None:
    sample_steps.record("sample_timer", past_due=timer.past_due)


@bp.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="SampleStorage")
@bp.queue_output(arg_name="out", queue_name="%SAMPLE_OUT_QUEUE%", connection="SampleStorage")
def sample_queue(msg: func.QueueMessage, out: func.Out[str]) -> None:
    body = msg.get_body().decode("utf-8")
    logging.info("sample_queue received %r (dequeue count %s)", body, msg.dequeue_count)
    sample_steps.record("sample_queue", body=body, dequeue_count=msg.dequeue_count, id=msg.id)
    if body.startswith("fail"):
        raise RuntimeError(f"failing on purpose: {body}")
    if body.startswith("sleep:"):
        time.sleep(float(body.removeprefix("sleep:")))
    if body.startswith("echo:"):
        out.set(body.removeprefix("echo:"))
    if body.startswith("steps:"):
        sample_steps.step_one(body)
        sample_steps.step_two(body)


@bp.route(route="items/{id:int}/{name?}", methods=["GET", "POST"])
def items(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "body": req.get_body().decode("utf-8"),
        "x_test": req.headers.get("x-test"),
        "url": req.url,
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json", headers={"X-Sample": "items"})


@bp.route(route="hello", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(f"hello {req.params.get('name', 'world')}", status_code=201)


@bp.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret-detail-do-not-leak")


@bp.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


@bp.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.queue_output(arg_name="out", queue_name="%SAMPLE_OUT_QUEUE%", connection="SampleStorage")
def enqueue(req: func.HttpRequest, out: func.Out[list[str]]) -> func.HttpResponse:
    out.set([req.get_body().decode("utf-8"), "second"])
    return func.HttpResponse(status_code=202)


@bp.route(route="context", auth_level=func.AuthLevel.ANONYMOUS)
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"function": context.function_name, "id": context.invocation_id}))
