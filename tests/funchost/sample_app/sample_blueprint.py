"""The sample functions: one of each trigger the stand-in supports, plus failure cases."""

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func
import sample_steps

bp = func.Blueprint()


@bp.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def sample_timer(timer: func.TimerRequest) -> None:
    sample_steps.record("sample_timer", past_due=timer.past_due)


@bp.timer_trigger(schedule="%SAMPLE_MONITORED_SCHEDULE%", arg_name="timer")
def sample_monitored_timer(timer: func.TimerRequest) -> None:
    # useMonitor is left to its default (on): the host keeps this timer's schedule status.
    # schedule_status is on the worker's TimerRequest (azure.functions.timer), not on the abstract one.
    status = getattr(timer, "schedule_status", None)
    sample_steps.record("sample_monitored_timer", past_due=timer.past_due, schedule_status=status)


@bp.queue_trigger(arg_name="msg", queue_name="%SAMPLE_QUEUE%", connection="SampleStorage")
@bp.queue_output(arg_name="out", queue_name="%SAMPLE_OUT_QUEUE%", connection="SampleStorage")
def sample_queue(msg: func.QueueMessage, out: func.Out[str]) -> None:
    body = msg.get_body().decode("utf-8")
    logging.info("sample_queue received %r (dequeue count %s)", body, msg.dequeue_count)
    sample_steps.record("sample_queue", body=body, dequeue_count=msg.dequeue_count, id=msg.id)
    if body.startswith("fail"):
        raise RuntimeError(f"failing on purpose: {body}")
    if body.startswith("sleep:"):
        # "sleep:<seconds>", optionally followed by a space and a label that tells messages apart
        time.sleep(float(body.removeprefix("sleep:").split()[0]))
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


_pool_logger = logging.getLogger("sample.pool")


@bp.route(route="threads", auth_level=func.AuthLevel.ANONYMOUS)
def log_from_threads(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Logs from the invocation's thread, from pool threads with and without the invocation context,
    and (optionally) from a thread that logs after the invocation has returned."""
    logging.info("from the invocation thread")

    def without_context() -> None:
        _pool_logger.info("pool thread without context")

    def with_context() -> None:
        # As Microsoft's Python guide shows it (azure.functions annotates the storage as a class, hence the ignore).
        context.thread_local_storage.invocation_id = context.invocation_id  # type: ignore[attr-defined]
        try:
            _pool_logger.info("pool thread with context")
        finally:
            context.thread_local_storage.invocation_id = None  # type: ignore[attr-defined]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(without_context).result()
        pool.submit(with_context).result()
    if req.params.get("late"):
        def late() -> None:
            context.thread_local_storage.invocation_id = context.invocation_id  # type: ignore[attr-defined]
            time.sleep(float(req.params["late"]))
            _pool_logger.info("late thread after the invocation returned")

        threading.Thread(target=late, name="sample-late", daemon=True).start()
    return func.HttpResponse(context.invocation_id)


@bp.route(route="async-threads", auth_level=func.AuthLevel.ANONYMOUS)
async def async_log_from_threads(req: func.HttpRequest) -> func.HttpResponse:
    """A coroutine function: its task and tasks it creates carry the ID; an executor thread does not."""
    logging.info("from the coroutine")
    await asyncio.gather(asyncio.create_task(_log_in_task()))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _pool_logger.info, "executor thread of a coroutine")
    return func.HttpResponse("ok")


async def _log_in_task() -> None:
    logging.info("from a task the coroutine created")
