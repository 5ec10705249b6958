"""Listener singleton locks through blob leases, as the WebJobs SDK keeps a timer on one instance.

Sources (Azure/azure-webjobs-sdk, src/Microsoft.Azure.WebJobs.Host/Singleton/):

- ``TimerListener`` (azure-webjobs-sdk-extensions) carries ``[Singleton(Mode = SingletonMode.Listener)]``,
  so every timer function's listener runs behind a ``SingletonListener``. There is no function-level
  (invocation) lock for timers: only the listener lock.
- ``SingletonListener.cs``: the lock ID is ``SingletonManager.FormatLockId`` + ``".Listener"``, i.e.
  ``{hostId}/Host.Functions.{name}.Listener``. ``StartAsync`` tries once (no retry when recovery is
  on); on failure it starts a recovery timer that tries again every
  ``ListenerLockRecoveryPollingInterval`` and starts the inner listener once it has the lock.
  ``StopAsync`` releases the lock.
- ``BlobLeaseDistributedLockManager.cs``: the lock is a blob ``locks/{lockId}`` in the container
  ``azure-webjobs-hosts``; acquire a lease for the lock period, and on 404 create the (empty) blob,
  and the container if needed, then acquire again; 409 means someone else holds it. Listener locks
  write no owner metadata (the owner ID passed is null). Release ignores 404/409.
- ``SingletonManager.cs``: the lease is renewed every half lock period (``LinearSpeedupStrategy``
  retries sooner, down to 1 s, after a server error). A renewal that fails with a client error
  (the lease was lost) is thrown: the host gives up the listener.
- ``SingletonOptions.cs``: ``ListenerLockPeriod`` 60 s, ``ListenerLockRecoveryPollingInterval``
  60 s; lock periods must lie within 15–60 s (Azure Storage's lease limits) and the recovery
  interval must be at least 15 s. host.json ``singleton`` sets them.

What the stand-in simplifies: when a renewal finds the lease lost, the real host's exception
handler restarts the whole job host; the stand-in stops only that listener and goes back to
recovery polling (what newer SDKs do through ``OnLeaseConflictAsync``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["ListenerLock", "SingletonOptions", "listener_lock_blob"]

logger = logging.getLogger(__name__)

_MIN_LEASE, _MAX_LEASE = 15.0, 60.0
_MIN_RENEWAL_INTERVAL = 1.0  # SingletonManager.MinimumLeaseRenewalInterval
_LOCKS_DIRECTORY = "locks"  # HostDirectoryNames.SingletonLocks


@dataclass(frozen=True)
class SingletonOptions:
    """host.json ``singleton`` with SingletonOptions.cs defaults and limits (seconds)."""

    listener_lock_period: float = 60.0
    listener_lock_recovery_polling_interval: float = 60.0

    @classmethod
    def from_section(cls, section: dict[str, Any], parse: Callable[[str], float]) -> SingletonOptions:
        period = parse(str(section.get("listenerLockPeriod", "00:01:00")))
        if not _MIN_LEASE <= period <= _MAX_LEASE:
            raise ValueError(f"host.json singleton.listenerLockPeriod is {period:g} s; it must lie within 15-60 s"
                             " (the blob lease limits)")
        recovery = parse(str(section.get("listenerLockRecoveryPollingInterval", "00:01:00")))
        if recovery < _MIN_LEASE:
            raise ValueError(f"host.json singleton.listenerLockRecoveryPollingInterval is {recovery:g} s; it must be"
                             " at least 15 s")
        return cls(listener_lock_period=period, listener_lock_recovery_polling_interval=recovery)


def listener_lock_blob(host_id: str, function_id: str) -> str:
    """``locks/{hostId}/{functionId}.Listener``: where the lock of a function's listener lives."""
    return f"{_LOCKS_DIRECTORY}/{host_id}/{function_id}.Listener"


class ListenerLock:
    """One instance's side of a listener lock: acquire or poll for it, keep it, release it.

    ``on_acquired`` starts the inner listener (it runs on the lock's thread, so it should return
    promptly); ``on_lost`` stops it. Nothing here blocks the caller of :meth:`start`.
    """

    def __init__(
        self,
        container: ContainerClient,
        blob_name: str,
        options: SingletonOptions,
        *,
        on_acquired: Callable[[], None],
        on_lost: Callable[[], None],
        name: str,
    ) -> None:
        self._container = container
        self.blob_name = blob_name
        self._options = options
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._lease: Any = None  # BlobLeaseClient while held
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"funchost-lock-{name}", daemon=True)

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float, *, release: bool = True) -> None:
        """Stop renewing and polling; release the lease unless the instance is being killed."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if release and self._lease is not None:
            # BlobLeaseDistributedLockManager.ReleaseLeaseAsync: 404 and 409 mean nothing to release.
            try:
                self._lease.release()
            except (ResourceNotFoundError, ResourceExistsError):
                pass
            except HttpResponseError as exc:
                if exc.status_code not in (404, 409, 412):
                    logger.warning("releasing singleton lock %s failed: %s", self.blob_name, exc)
        self._lease = None
        self._held.clear()

    # -- the lock's thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._lease is None:
                try:
                    self._lease = self._try_acquire()
                except Exception as exc:  # storage unreachable: try again at the next recovery poll
                    logger.warning("singleton lock %s: acquiring failed: %s", self.blob_name, exc)
                if self._lease is None:
                    logger.debug("Unable to acquire Singleton lock (%s).", self.blob_name)
                    self._stop.wait(self._options.listener_lock_recovery_polling_interval)
                    continue
                logger.debug("Singleton lock acquired (%s)", self.blob_name)
                self._held.set()
                self._on_acquired()
            if not self._keep():
                self._held.clear()
                self._lease = None
                if not self._stop.is_set():
                    self._on_lost()

    def _try_acquire(self) -> Any:
        """BlobLeaseDistributedLockManager.TryAcquireLeaseAsync: a lease, or None when another holds it."""
        blob = self._container.get_blob_client(self.blob_name)
        period = round(self._options.listener_lock_period)
        try:
            return blob.acquire_lease(lease_duration=period)
        except ResourceExistsError:
            return None  # 409: leased by another instance
        except ResourceNotFoundError:
            pass
        self._create_lock_blob(blob)
        try:
            return blob.acquire_lease(lease_duration=period)
        except ResourceExistsError:
            return None

    def _create_lock_blob(self, blob: Any) -> None:
        """TryCreateAsync: an empty blob (and the container when it is missing); 409/412: someone else did."""
        try:
            blob.upload_blob(b"", overwrite=True)
            return
        except ResourceNotFoundError:
            pass
        except (ResourceExistsError, HttpResponseError) as exc:
            if isinstance(exc, ResourceExistsError) or exc.status_code == 412:
                return
            raise
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        try:
            blob.upload_blob(b"", overwrite=True)
        except ResourceExistsError:
            return
        except HttpResponseError as exc:
            if exc.status_code != 412:
                raise

    def _keep(self) -> bool:
        """Renew every half period until stopped (True) or the lease is lost (False)."""
        normal = self._options.listener_lock_period / 2
        delay, failures = normal, 0
        while not self._stop.wait(delay):
            try:
                self._lease.renew()
                delay, failures = normal, 0
                continue
            except HttpResponseError as exc:
                if exc.status_code is None or exc.status_code < 500:
                    logger.error("Singleton lock renewal failed for blob '%s' with error code %s: the lease is"
                                 " lost; the listener stops.", self.blob_name, exc.status_code)
                    return False
                # RenewAsync answers false on server errors: LinearSpeedupStrategy tries again sooner.
                logger.warning("Singleton lock renewal failed for blob '%s' with error code %s.",
                               self.blob_name, exc.status_code)
            except Exception as exc:  # no answer at all: treated like a server error
                logger.warning("Singleton lock renewal failed for blob '%s': %s", self.blob_name, exc)
            failures += 1
            delay = max(_MIN_RENEWAL_INTERVAL, normal / (failures + 1))
        return True
