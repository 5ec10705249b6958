"""Queue trigger listener with the Storage queue extension's semantics (host.json ``extensions.queues``).

- Polls with exponential back-off from 100 ms up to ``maxPollingInterval`` while the queue is idle,
  and polls again at once while messages keep coming.
- Fetches ``batchSize`` messages at a time, and a new batch once no more than ``newBatchThreshold``
  are still being processed.
- A received message is leased (made invisible) for ``lease`` seconds, and the lease is renewed
  every ``lease/2`` while the function runs; if the process dies, the message reappears when the
  lease runs out and is redelivered with a higher dequeue count.
- Success deletes the message. A failure makes it visible again after ``visibilityTimeout``, or,
  once ``dequeue_count >= maxDequeueCount``, copies the original text to ``<queue>-poison`` and
  deletes it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as FuncQueueMessage

from .activity import Activity
from .hostjson import QueueOptions
from .invoke import InvocationRecord, Invoker
from .metadata import FunctionSpec

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueMessage

__all__ = ["QueueListener", "decode_message", "encode_message", "ensure_queue", "poison_queue_name"]

logger = logging.getLogger(__name__)


def poison_queue_name(queue_name: str) -> str:
    return f"{queue_name}-poison"


def encode_message(body: str | bytes, encoding: str) -> str:
    """The text the host writes to a queue for ``body`` under host.json ``messageEncoding``."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8")


def decode_message(text: str, encoding: str) -> bytes:
    """The body the function sees for the raw queue text. Raises ``ValueError`` on bad base64, as the host fails."""
    if encoding == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"message is not valid base64 (host.json messageEncoding is base64): {exc}") from exc
    return text.encode("utf-8")


def ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


@dataclass
class _Lease:
    """The current pop receipt of a message being processed; renewals replace it."""

    message_id: str
    pop_receipt: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


class QueueListener:
    def __init__(
        self,
        *,
        spec: FunctionSpec,
        queue_name: str,
        client: QueueClient,
        poison_client: QueueClient,
        options: QueueOptions,
        lease_seconds: float,
        invoker: Invoker,
        activity: Activity,
    ) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self.client = client
        self._poison = poison_client
        self._options = options
        self._lease_seconds = max(1, math.ceil(lease_seconds))
        self._invoker = invoker
        self._activity = activity
        self._stop = threading.Event()
        # Leases keep being renewed during the stop grace period, until the last invocation is done.
        self._renew_stop = threading.Event()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._leases: dict[str, _Lease] = {}
        workers = options.batch_size + options.new_batch_threshold
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"funchost-q-{spec.name}")
        self._poller = threading.Thread(target=self._poll_loop, name=f"funchost-poll-{spec.name}", daemon=True)
        self._renewer = threading.Thread(target=self._renew_loop, name=f"funchost-lease-{spec.name}", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        ensure_queue(self.client)
        self._poller.start()
        self._renewer.start()
        logger.info("listening on queue %s for %s", self.queue_name, self.spec.name)

    def wake(self) -> None:
        """Poll now: something was just enqueued by this host (the extension does the same for its own writes)."""
        self._wake.set()

    def stop(self, grace: float) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._poller.is_alive():
            self._poller.join(grace)
        with self._cond:
            finished = self._cond.wait_for(lambda: self._in_flight == 0, grace)
        if not finished:
            logger.warning("%s: %d invocation(s) still running at stop; their messages reappear when the lease ends",
                           self.spec.name, self._in_flight)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._renew_stop.set()
        if self._renewer.is_alive():
            self._renewer.join(grace)

    # -- polling -----------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        options = self._options
        delay = options.min_polling_interval
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self._in_flight <= options.new_batch_threshold or self._stop.is_set()
                )
            if self._stop.is_set():
                break
            fetched = 0
            # Counted as activity from before the receive, so drain() never sees "queue empty, nothing running"
            # while messages are in our hands but not yet dispatched.
            with self._activity.busy():
                try:
                    messages = self._receive(options.batch_size)
                except Exception as exc:
                    logger.warning("%s: receiving from %s failed: %s", self.spec.name, self.queue_name, exc)
                    messages = []
                for message in messages:
                    self._dispatch(message)
                fetched = len(messages)
            if fetched:
                delay = options.min_polling_interval
                continue
            woken = self._wake.wait(delay)
            self._wake.clear()
            delay = options.min_polling_interval if woken else min(delay * 2, options.max_polling_interval)

    def _receive(self, count: int) -> list[QueueMessage]:
        pages = self.client.receive_messages(
            messages_per_page=count, visibility_timeout=self._lease_seconds
        ).by_page()
        return list(next(pages, []))

    def _dispatch(self, message: QueueMessage) -> None:
        lease = _Lease(message_id=message.id, pop_receipt=message.pop_receipt or "")
        with self._cond:
            self._in_flight += 1
            self._leases[message.id] = lease
        self._activity.enter()
        try:
            future = self._pool.submit(self._process, message, lease)
        except RuntimeError:  # the pool is shut down: we are stopping; the lease will run out
            self._release(message.id)
            return
        future.add_done_callback(self._on_done(message.id))

    def _on_done(self, message_id: str) -> Callable[[Future[None]], None]:
        def callback(future: Future[None]) -> None:
            # _process releases itself; a future cancelled at stop never ran, so release it here.
            if future.cancelled():
                self._release(message_id)

        return callback

    def _release(self, message_id: str) -> None:
        with self._cond:
            self._leases.pop(message_id, None)
            self._in_flight -= 1
            self._cond.notify_all()
        self._activity.exit()

    # -- processing --------------------------------------------------------------------------------

    def _process(self, message: QueueMessage, lease: _Lease) -> None:
        try:
            self._process_one(message, lease)
        except Exception:
            logger.exception("%s: completing message %s failed", self.spec.name, message.id)
        finally:
            with lease.lock:
                lease.done = True
            self._release(message.id)

    def _process_one(self, message: QueueMessage, lease: _Lease) -> None:
        dequeue_count = int(message.dequeue_count or 1)
        max_dequeue = self._options.max_dequeue_count
        raw: str = message.content if isinstance(message.content, str) else str(message.content)
        details: dict[str, Any] = {"queue": self.queue_name, "message_id": message.id, "dequeue_count": dequeue_count}
        if dequeue_count > max_dequeue:
            # Already delivered more often than allowed (the host died while processing it): do not run it again.
            logger.warning("%s: message %s was dequeued %d times (max %d) without completing; moving it to %s",
                           self.spec.name, message.id, dequeue_count, max_dequeue, poison_queue_name(self.queue_name))
            self._move_to_poison(raw, lease)
            return
        try:
            body = decode_message(raw, self._options.message_encoding)
        except ValueError as exc:
            logger.error("%s: %s", self.spec.name, exc)
            record = InvocationRecord.failed_before_start(self.spec.name, "queue", exc, details)
            self._fail(raw, lease, dequeue_count, record)
            return
        trigger_value = FuncQueueMessage(
            id=message.id,
            body=body,
            dequeue_count=dequeue_count,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        result = self._invoker.invoke(
            self.spec, trigger_value, trigger="queue", reason=f"New queue message detected on '{self.queue_name}'.",
            details=details,
        )
        if result.exception is None:
            with lease.lock:
                self.client.delete_message(lease.message_id, lease.pop_receipt)
                lease.done = True
            result.record.details["disposition"] = "deleted"
            self._invoker.publish(result.record)
        else:
            self._fail(raw, lease, dequeue_count, result.record)

    def _fail(self, raw: str, lease: _Lease, dequeue_count: int, record: InvocationRecord) -> None:
        if dequeue_count >= self._options.max_dequeue_count:
            logger.warning("%s: message %s failed %d times; moving it to %s",
                           self.spec.name, lease.message_id, dequeue_count, poison_queue_name(self.queue_name))
            self._move_to_poison(raw, lease)
            record.details["disposition"] = "poisoned"
        else:
            retry_in = math.ceil(self._options.visibility_timeout)
            with lease.lock:
                self.client.update_message(lease.message_id, lease.pop_receipt, visibility_timeout=retry_in)
                lease.done = True
            record.details["disposition"] = "retry"
            record.details["retry_in_s"] = retry_in
        self._invoker.publish(record)

    def _move_to_poison(self, raw: str, lease: _Lease) -> None:
        # The raw text is copied as-is, so the poison message keeps the original body and encoding.
        try:
            self._poison.send_message(raw)
        except ResourceNotFoundError:
            ensure_queue(self._poison)
            self._poison.send_message(raw)
        with lease.lock:
            self.client.delete_message(lease.message_id, lease.pop_receipt)
            lease.done = True

    # -- lease renewal -----------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        interval = self._lease_seconds / 2
        while not self._renew_stop.wait(interval):
            with self._cond:
                leases = list(self._leases.values())
            for lease in leases:
                with lease.lock:
                    if lease.done:
                        continue
                    try:
                        receipt = self.client.update_message(
                            lease.message_id, lease.pop_receipt, visibility_timeout=self._lease_seconds
                        )
                        lease.pop_receipt = receipt.pop_receipt or lease.pop_receipt
                    except Exception as exc:
                        logger.warning("%s: renewing the lease of message %s failed: %s",
                                       self.spec.name, lease.message_id, exc)
