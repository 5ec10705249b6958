"""The one way apim-dr starts worker threads.

Every thread pool of the app (queue sends, table transactions, catalog queries of the RPO monitor,
the status view and retention) comes from :func:`thread_pool`, so what a worker thread needs from
the thread that started it is added in one place.

What it needs today: the Functions invocation it works for. The Python worker tags a log record with
the invocation ID it keeps in a thread-local, set only on the thread that runs the function; the host
writes a record to Application Insights only when that ID names an invocation still running
(Microsoft's Python developer guide, "Logging from background threads"). A pool thread has no ID,
so its ``APIMDR_RPO`` / ``APIMDR_RETENTION`` lines would never reach Azure. ``dr_core`` does not
import ``azure.functions``: the triggers hand in what a new thread must do
(:func:`carried_into_threads`, with ``context.thread_local_storage.invocation_id =
context.invocation_id``), and every pool started while it is in force runs it first in each of its
threads (and carries it on to pools those threads start). Pools are joined before their caller
returns, so no thread logs after its invocation has ended (the host drops such records even with
the ID).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

__all__ = ["ThreadSetup", "carried_into_threads", "parallel_map", "thread_pool"]

T = TypeVar("T")
R = TypeVar("R")

ThreadSetup = Callable[[], None]
# What each new worker thread runs first, as the thread that starts the pool has it (one context per thread).
_SETUPS: ContextVar[tuple[ThreadSetup, ...]] = ContextVar("apimdr_thread_setups", default=())


@contextmanager
def carried_into_threads(setup: ThreadSetup) -> Iterator[None]:
    """While the block runs on this thread, every pool it starts runs ``setup`` first in each of its threads.

    The triggers wrap each invocation in it; ``setup`` must be cheap and must not raise.
    """
    token = _SETUPS.set((*_SETUPS.get(), setup))
    try:
        yield
    finally:
        _SETUPS.reset(token)


def _initializer(setups: tuple[ThreadSetup, ...]) -> Callable[[], None]:
    def start_thread() -> None:
        _SETUPS.set(setups)  # a pool started from this thread carries them on
        for setup in setups:
            setup()

    return start_thread


def thread_pool(max_workers: int, *, name: str) -> ThreadPoolExecutor:
    """A pool of at most ``max_workers`` threads (at least one), named ``name-N`` in logs and dumps.

    Its threads run what :func:`carried_into_threads` put in force on the calling thread.
    """
    return ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix=name,
                              initializer=_initializer(_SETUPS.get()))


def parallel_map(fn: Callable[[T], R], items: Iterable[T], *, max_workers: int, name: str) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``max_workers`` threads, in order; the first error is raised."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    with thread_pool(min(max_workers, len(items)), name=name) as pool:
        return list(pool.map(fn, items))
