"""The work queues in Azure Queue storage: starts and fan-outs on one queue, polls on the other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dr_core.kernel.threads import parallel_map

from .errors import Service, translates

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from dr_core.jobs.messages import WorkMessage

__all__ = ["StorageWorkQueue", "send_messages"]

_SEND_THREADS = 16


def send_messages(queue: QueueClient, messages: Sequence[tuple[WorkMessage, int]]) -> None:
    """Send ``(message, visibility delay in seconds)`` pairs, in parallel when there are several.

    Queue storage has no batch send, so parallel requests keep the timer fast.
    """
    def send(item: tuple[WorkMessage, int]) -> None:
        message, delay = item
        queue.send_message(message.encode(), visibility_timeout=max(0, int(delay)) or None)

    parallel_map(send, messages, max_workers=_SEND_THREADS, name="queue-send")


@translates(Service.STORAGE)
class StorageWorkQueue:
    """:class:`~dr_core.ports.WorkQueue` on Azure Queue storage.

    Two queues (and two functions) so that polls never wait behind a backlog of starts: a
    thousand planned starts must not delay the status of operations that already run.
    """

    what = "the work queues"

    def __init__(self, work: QueueClient, polls: QueueClient) -> None:
        self._work = work
        self._polls = polls

    def send(self, messages: Sequence[tuple[WorkMessage, int]]) -> None:
        send_messages(self._polls, [m for m in messages if m[0].op == "poll"])
        send_messages(self._work, [m for m in messages if m[0].op != "poll"])
