"""What every function does around its call of ``dr_core``: carry the invocation into the threads it starts.

The Python worker tags log records with the invocation ID it keeps in ``context.thread_local_storage``,
set on the function's own thread only; the host drops records without a running invocation's ID. So
each function runs inside :func:`invocation`, which has every thread pool ``dr_core`` starts set that ID
on its threads first (:func:`dr_core.kernel.threads.carried_into_threads`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import azure.functions as func

from dr_core.kernel.threads import carried_into_threads


@contextmanager
def invocation(context: func.Context | None) -> Iterator[None]:
    """The block runs for ``context``'s invocation: threads started in it log as part of it."""
    if context is None:
        yield
        return
    # azure.functions annotates thread_local_storage as the class threading.local; it is an instance of it.
    storage = cast(threading.local, context.thread_local_storage)
    invocation_id = context.invocation_id

    def tag_thread() -> None:
        storage.invocation_id = invocation_id

    with carried_into_threads(tag_thread):
        yield
