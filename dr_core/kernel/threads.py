"""The one way apim-dr starts worker threads.

Every thread pool of the app (queue sends, table transactions, catalog queries of the RPO monitor,
the status view and retention) comes from :func:`thread_pool`, so what a worker thread needs from
the thread that started it is added in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["parallel_map", "thread_pool"]

T = TypeVar("T")
R = TypeVar("R")


def thread_pool(max_workers: int, *, name: str) -> ThreadPoolExecutor:
    """A pool of at most ``max_workers`` threads (at least one), named ``name-N`` in logs and dumps."""
    return ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix=name)


def parallel_map(fn: Callable[[T], R], items: Iterable[T], *, max_workers: int, name: str) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``max_workers`` threads, in order; the first error is raised."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    with thread_pool(min(max_workers, len(items)), name=name) as pool:
        return list(pool.map(fn, items))
