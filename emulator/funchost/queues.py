"""The queue trigger's listener, as the Storage queue extension runs it on each host instance.

Sources (Azure/azure-sdk-for-net, sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/):

- ``Queues/QueueListener.cs`` ``ExecuteAsync``: the first poll runs at once. A poll asks for
  ``batchSize`` messages with a visibility timeout of 10 minutes. Messages found: each is processed
  in the background, and the next poll waits only until no more than ``newBatchThreshold`` are
  still processing (no delay). Nothing found (or a storage error): wait the back-off delay, which a
  message this instance's own output binding adds to the queue cuts short (``Notify``; other
  instances are not told). ``WaitForNewBatchThreshold`` and the delay are the only waits.
- ``Timers/RandomizedExponentialBackoffStrategy.cs`` with ``QueuePollingIntervals`` (minimum 100 ms,
  maximum host.json ``maxPollingInterval``, default 1 minute): after a poll that found messages
  the next empty poll waits the minimum; each further empty poll waits
  ``minimum + random(0.8..1.2) * 2^(n-1) * minimum`` until that reaches the maximum, which then
  holds until messages are found again. A ``Notify`` wakes the wait but does not reset it.
- ``QueueListener.ProcessMessageAsync`` / ``UpdateQueueMessageVisibilityCommand``: while the
  function runs, the message's visibility is renewed every half of the 10 minutes.
- ``Queues/QueueProcessor.cs``: before the function runs, a message dequeued more than
  ``maxDequeueCount`` times goes to the poison queue. After it: success deletes the message;
  failure with ``dequeueCount >= maxDequeueCount`` copies the message to ``<queue>-poison``
  (created if missing) and deletes it, else makes it visible again after ``visibilityTimeout``
  (default 0). Pop-receipt mismatches and missing messages are ignored on delete and release. A
  queue without a poison queue (its name already ends in ``-poison``, or is too long for the
  suffix) keeps a failed message invisible instead of releasing it.
- ``Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/QueueServiceClientProvider.cs``: a
  message that cannot be decoded under ``messageEncoding: base64`` is moved to the poison queue
  as soon as it is received (``MessageDecodingFailed``); the function never runs.
- ``Queues/QueuesOptions.cs``: ``batchSize`` 1-32 (default 16), ``newBatchThreshold`` default
  ``batchSize/2 * processorCount`` (processor count 1 on the Dynamic SKU), ``maxPollingInterval`` at
  least 100 ms, ``maxDequeueCount`` at least 1.

Stand-in choices: the 10-minute visibility timeout is the default of ``lease_seconds``, which tests
shorten to see a crashed host's message come back sooner; trigger queues are created at start
(the app's infra/ deploys them; the real listener only backs off while a queue is missing).
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as FuncQueueMessage

from .activity import Activity
from .hostjson import QueueOptions
from .invoke import HostKilledError, InvocationRecord, Invoker
from .metadata import FunctionSpec

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueMessage

__all__ = [
    "DEFAULT_VISIBILITY_LEASE",
    "QueueListener",
    "RandomizedExponentialBackoff",
    "decode_message",
    "encode_message",
    "ensure_queue",
    "poison_queue_name",
]

logger = logging.getLogger(__name__)

# QueueListener._visibilityTimeout: how long a received message stays invisible while it is processed.
DEFAULT_VISIBILITY_LEASE = 600.0
_MAX_QUEUE_NAME = 63
_POISON_SUFFIX = "-poison"
_POLL_LOG_SIZE = 1000


def poison_queue_name(queue_name: str) -> str:
    return f"{queue_name}{_POISON_SUFFIX}"


def has_poison_queue(queue_name: str) -> bool:
    """QueueListenerFactory.CreatePoisonQueueReference: none for ``*-poison`` queues or names too long."""
    return not queue_name.endswith(_POISON_SUFFIX) and len(queue_name) + len(_POISON_SUFFIX) <= _MAX_QUEUE_NAME


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


class RandomizedExponentialBackoff:
    """RandomizedExponentialBackoffStrategy.cs (delta = minimum), seconds."""

    RANDOMIZATION_FACTOR = 0.2

    def __init__(self, minimum: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if minimum < 0 or maximum < minimum:
            raise ValueError("need 0 <= minimum <= maximum")
        self.minimum, self.maximum = minimum, maximum
        self._current = 0.0
        self._exponent = 0
        self._rng = rng or random.Random()

    def next_delay(self, execution_succeeded: bool) -> float:
        if execution_succeeded:
            self._current, self._exponent = self.minimum, 1
        elif self._current != self.maximum:
            interval = self.minimum
            if self._exponent > 0:
                factor = self._rng.uniform(1 - self.RANDOMIZATION_FACTOR, 1 + self.RANDOMIZATION_FACTOR)
                interval += factor * 2 ** (self._exponent - 1) * self.minimum
            if interval < self.maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current


@dataclass
class _Lease:
    """The current pop receipt of a message being processed; renewals replace it."""

    message_id: str
    pop_receipt: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


@dataclass(frozen=True)
class PollEvent:
    """One poll of the queue: when it was sent (monotonic seconds), how many messages it got, and the
    delay chosen after it (None: the next poll waited for the batch threshold instead)."""

    at: float
    received: int
    delay_after: float | None


class QueueListener:
    def __init__(
        self,
        *,
        spec: FunctionSpec,
        queue_name: str,
        client: QueueClient,
        poison_client: QueueClient | None,
        options: QueueOptions,
        lease_seconds: float,
        invoker: Invoker,
        activity: Activity,
        on_poisoned: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.spec = spec
        self.queue_name = queue_name
        self.client = client
        self._poison = poison_client
        self._options = options
        self._lease_seconds = max(1, math.ceil(lease_seconds))
        self._invoker = invoker
        self._activity = activity
        self._on_poisoned = on_poisoned
        self._backoff = RandomizedExponentialBackoff(options.min_polling_interval, options.max_polling_interval)
        self._found_since_last_delay = False
        self._stop = threading.Event()
        self._dead = False
        # Leases keep being renewed during the stop grace period, until the last invocation is done.
        self._renew_stop = threading.Event()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._leases: dict[str, _Lease] = {}
        self.polls: collections.deque[PollEvent] = collections.deque(maxlen=_POLL_LOG_SIZE)
        workers = options.batch_size + options.new_batch_threshold
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"funchost-q-{spec.name}")
        self._poller = threading.Thread(target=self._poll_loop, name=f"funchost-poll-{spec.name}", daemon=True)
        self._renewer = threading.Thread(target=self._renew_loop, name=f"funchost-lease-{spec.name}", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        ensure_queue(self.client)
        self._poller.start()
        self._renewer.start()
        logger.info("listening on queue %s for %s (batchSize %d, newBatchThreshold %d, maxPollingInterval %gs)",
                    self.queue_name, self.spec.name, self._options.batch_size, self._options.new_batch_threshold,
                    self._options.max_polling_interval)

    def notify(self) -> None:
        """QueueListener.Notify: this instance added a message to the queue; cut the current wait short."""
        self._wake.set()

    wake = notify

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

    def kill(self) -> None:
        """The instance died: stop polling and renewing at once; in-flight messages are left as they are."""
        self._dead = True
        self._stop.set()
        self._renew_stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- polling (QueueListener.ExecuteAsync) ------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            polled_at = time.monotonic()
            # Counted as activity from before the receive, so drain() never sees "queue empty, nothing
            # running" while messages are in our hands but not yet dispatched.
            with self._activity.busy():
                try:
                    messages = self._receive(self._options.batch_size)
                except Exception as exc:  # not found, server errors: back off as the listener does
                    logger.warning("%s: receiving from %s failed: %s", self.spec.name, self.queue_name, exc)
                    messages = []
                for message in messages:
                    self._dispatch(message)
            if messages:
                self._found_since_last_delay = True
                self.polls.append(PollEvent(polled_at, len(messages), None))
                self._wait_for_new_batch_threshold()
                continue
            delay = self._backoff.next_delay(self._found_since_last_delay)
            self._found_since_last_delay = False
            self.polls.append(PollEvent(polled_at, 0, delay))
            self._wake.wait(delay)

    def _wait_for_new_batch_threshold(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._in_flight <= self._options.new_batch_threshold or self._stop.is_set())

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

    # -- processing (QueueListener.ProcessMessageAsync, QueueProcessor) ----------------------------

    def _process(self, message: QueueMessage, lease: _Lease) -> None:
        try:
            self._process_one(message, lease)
        except HostKilledError:
            pass  # a killed instance completes nothing: the message reappears when its lease ends
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
        try:
            body = decode_message(raw, self._options.message_encoding)
        except ValueError as exc:
            # MessageDecodingFailed: straight to the poison queue, the function never runs.
            logger.error("%s: %s; moving message %s to %s", self.spec.name, exc, message.id,
                         poison_queue_name(self.queue_name))
            record = InvocationRecord.failed_before_start(self.spec.name, "queue", exc, details,
                                                          instance_id=self._invoker.instance_id)
            record.details["invoked"] = False
            self._poison_and_delete(raw, lease, record)
            return
        if dequeue_count > max_dequeue:
            # BeginProcessingMessageAsync: delivered more often than allowed (hosts died processing it).
            logger.warning("%s: message %s was dequeued %d times (max %d) without completing; moving it to %s",
                           self.spec.name, message.id, dequeue_count, max_dequeue, poison_queue_name(self.queue_name))
            self._move_to_poison(raw, lease)
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
        if isinstance(result.exception, HostKilledError) or self._dead:
            raise HostKilledError("killed during the invocation")
        if result.exception is None:
            self._delete(lease)
            result.record.details["disposition"] = "deleted"
            self._invoker.publish(result.record)
        elif dequeue_count >= max_dequeue and self._poison is not None:
            self._poison_and_delete(raw, lease, result.record)
        elif self._poison is None:
            # No poison queue for this queue: leave the message invisible rather than loop on it.
            result.record.details["disposition"] = "left-invisible"
            self._invoker.publish(result.record)
        else:
            retry_in = math.ceil(self._options.visibility_timeout)
            self._update_visibility(lease, retry_in)
            result.record.details["disposition"] = "retry"
            result.record.details["retry_in_s"] = retry_in
            self._invoker.publish(result.record)

    def _poison_and_delete(self, raw: str, lease: _Lease, record: InvocationRecord) -> None:
        logger.warning("%s: message %s failed %d time(s); moving it to %s", self.spec.name, lease.message_id,
                       record.details.get("dequeue_count", 1), poison_queue_name(self.queue_name))
        self._move_to_poison(raw, lease)
        record.details["disposition"] = "poisoned"
        self._invoker.publish(record)

    def _move_to_poison(self, raw: str, lease: _Lease) -> None:
        if self._dead:
            raise HostKilledError("killed")
        if self._poison is None:
            return
        # The raw text is copied as-is, so the poison message keeps the original body and encoding.
        try:
            self._poison.send_message(raw)
        except ResourceNotFoundError:
            ensure_queue(self._poison)
            self._poison.send_message(raw)
        self._on_poisoned(poison_queue_name(self.queue_name))
        self._delete(lease)

    def _delete(self, lease: _Lease) -> None:
        if self._dead:
            raise HostKilledError("killed")
        with lease.lock:
            try:
                self.client.delete_message(lease.message_id, lease.pop_receipt)
            except (ResourceNotFoundError, HttpResponseError) as exc:
                if not _gone_or_taken(exc):
                    raise
                logger.debug("%s: message %s was not deleted (%s)", self.spec.name, lease.message_id, exc)
            lease.done = True

    def _update_visibility(self, lease: _Lease, seconds: int) -> None:
        if self._dead:
            raise HostKilledError("killed")
        with lease.lock:
            try:
                self.client.update_message(lease.message_id, lease.pop_receipt, visibility_timeout=seconds)
            except (ResourceNotFoundError, HttpResponseError) as exc:
                if not _gone_or_taken(exc):
                    raise
            lease.done = True

    # -- lease renewal -----------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        interval = self._lease_seconds / 2
        while not self._renew_stop.wait(interval):
            with self._cond:
                leases = list(self._leases.values())
            for lease in leases:
                if self._dead:
                    return
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


def _gone_or_taken(exc: Exception) -> bool:
    """404 (message or queue gone) or 400 PopReceiptMismatch (someone else has it): nothing left to do."""
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "error_code", "") or "")
    return status == 404 or (status == 400 and "PopReceipt" in code)
