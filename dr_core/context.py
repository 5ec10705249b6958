"""Wiring: settings, the clock, the storage and ARM adapters, and the use cases built from them.

One :class:`DrContext` per worker process, built on first use. Adapters (job store, work
queue, backup store, ARM, notifier) are created lazily, so the timer never imports the APIM
SDK. Use cases (the worker, the planner, the restorer, the RPO monitor, ...) take the adapters
they need, not the context: tests build them with in-memory fakes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dr_core.kernel.clock import Clock, SystemClock
from dr_core.kernel.settings import Settings, load_settings

if TYPE_CHECKING:
    from dr_core.api.handlers import Api
    from dr_core.azure.arm import ApimManagement
    from dr_core.azure.blobs import BackupStore
    from dr_core.azure.clients import AzureClients
    from dr_core.azure.tables import JobStore
    from dr_core.backup.manifest import ManifestRecorder
    from dr_core.backup.planner import BackupPlanner
    from dr_core.drills.drills import Drills
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.messages import WorkQueue
    from dr_core.jobs.notify import Notifier
    from dr_core.jobs.worker import Worker
    from dr_core.posture.rpo import RpoMonitor
    from dr_core.posture.status import PostureStatus
    from dr_core.restore.restorer import Restorer
    from dr_core.retention.pruner import RetentionPruner
    from dr_core.standby.sync import StandbySync

__all__ = ["DrContext", "get_context", "reset_context"]

logger = logging.getLogger(__name__)


@dataclass
class DrContext:
    settings: Settings
    clients: AzureClients
    clock: Clock = field(default_factory=SystemClock)
    _store: JobStore | None = field(default=None, repr=False)
    _queue: WorkQueue | None = field(default=None, repr=False)
    _arm: ApimManagement | None = field(default=None, repr=False)
    _backups: BackupStore | None = field(default=None, repr=False)
    _notifier: Notifier | None = field(default=None, repr=False)
    _ready_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _storage_ready: bool = field(default=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> DrContext:
        from dr_core.azure.clients import AzureClients

        return cls(settings=settings, clients=AzureClients(settings), clock=clock or SystemClock())

    # -- adapters ----------------------------------------------------------------------------------
    @property
    def store(self) -> JobStore:
        if self._store is None:
            from dr_core.azure.tables import TableJobStore

            self._store = TableJobStore(self.clients.jobs_table())
        self._ensure_storage()
        return self._store

    @property
    def queue(self) -> WorkQueue:
        if self._queue is None:
            from dr_core.jobs.messages import StorageWorkQueue

            self._queue = StorageWorkQueue(self.clients.work_queue(), self.clients.poll_queue())
        self._ensure_storage()
        return self._queue

    @property
    def arm(self) -> ApimManagement:
        if self._arm is None:
            from dr_core.azure.arm import ApimOperations

            self._arm = ApimOperations(self.clients)
        return self._arm

    @property
    def backups(self) -> BackupStore:
        if self._backups is None:
            from dr_core.azure.blobs import BlobBackupStore

            self._backups = BlobBackupStore(self.clients.backup_blobs(), account=self.settings.backup_account)
        return self._backups

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            from dr_core.jobs.notify import LogNotifier, WebhookNotifier

            url = self.settings.webhook_url
            self._notifier = WebhookNotifier(url.reveal()) if url else LogNotifier()
        return self._notifier

    # -- use cases ---------------------------------------------------------------------------------
    def resolver(self) -> InstanceResolver:
        """A fresh resolver: discovery results are not kept across invocations."""
        from dr_core.inventory.resolver import InstanceResolver

        return InstanceResolver(self.settings, self.arm if self.settings.discovery_subscriptions else None)

    def worker(self) -> Worker:
        """The queue worker, with the work that follows a job's end: manifest, RPO, standby sync, drill check.

        The manifest comes first: it is read from the source, and the sooner after the backup the better.
        """
        from dr_core.jobs.worker import Worker
        from dr_core.posture.rpo import RpoFollower

        resolver = self.resolver()  # one per invocation, shared: discovery runs at most once for all followers
        return Worker(settings=self.settings, store=self.store, queue=self.queue, arm=self.arm,
                      backups=self.backups, notifier=self.notifier, clock=self.clock,
                      followers=[self.manifests(), RpoFollower(self.rpo_monitor(resolver=resolver), self.settings),
                                 self.standby_sync(resolver=resolver), self.drills(resolver=resolver)])

    def manifests(self) -> ManifestRecorder:
        from dr_core.backup.manifest import ManifestRecorder

        return ManifestRecorder(arm=self.arm, backups=self.backups, clock=self.clock)

    def standby_sync(self, *, resolver: InstanceResolver | None = None) -> StandbySync:
        from dr_core.standby.sync import StandbySync

        resolver = resolver or self.resolver()
        return StandbySync(settings=self.settings, store=self.store, restorer=self.restorer(resolver=resolver),
                           resolver=resolver, backups=self.backups, notifier=self.notifier, clock=self.clock)

    def drills(self, *, resolver: InstanceResolver | None = None) -> Drills:
        from dr_core.drills.drills import Drills

        resolver = resolver or self.resolver()
        return Drills(settings=self.settings, store=self.store, restorer=self.restorer(resolver=resolver),
                      resolver=resolver, arm=self.arm, backups=self.backups, notifier=self.notifier, clock=self.clock)

    def planner(self) -> BackupPlanner:
        from dr_core.backup.planner import BackupPlanner

        return BackupPlanner(settings=self.settings, store=self.store, queue=self.queue, resolver=self.resolver(),
                             clock=self.clock)

    def restorer(self, *, resolver: InstanceResolver | None = None) -> Restorer:
        from dr_core.restore.restorer import Restorer

        return Restorer(settings=self.settings, store=self.store, queue=self.queue, arm=self.arm,
                        backups=self.backups, resolver=resolver or self.resolver(), clock=self.clock)

    def rpo_monitor(self, *, resolver: InstanceResolver | None = None) -> RpoMonitor:
        from dr_core.posture.rpo import RpoMonitor

        return RpoMonitor(settings=self.settings, store=self.store, backups=self.backups, notifier=self.notifier,
                          resolver=resolver or self.resolver(), clock=self.clock)

    def posture_status(self) -> PostureStatus:
        from dr_core.posture.status import PostureStatus

        return PostureStatus(settings=self.settings, store=self.store, backups=self.backups,
                             resolver=self.resolver(), clock=self.clock)

    def retention(self) -> RetentionPruner:
        from dr_core.retention.pruner import RetentionPruner

        return RetentionPruner(settings=self.settings, store=self.store, backups=self.backups,
                               resolver=self.resolver(), clock=self.clock)

    def api(self) -> Api:
        from dr_core.api.handlers import Api

        return Api(self)

    def _ensure_storage(self) -> None:
        # In Azure, infra/ creates the table and queue; locally they may not exist yet.
        # One check per process, not per invocation.
        if self._storage_ready:
            return
        with self._ready_lock:
            if self._storage_ready:
                return
            from azure.core.exceptions import ResourceExistsError

            from dr_core.azure.errors import storage_errors

            with storage_errors("the app's storage (jobs table and work queue)"):
                with contextlib.suppress(ResourceExistsError):
                    self.clients.jobs_table().create_table()
                for queue in (self.clients.work_queue(), self.clients.poll_queue()):
                    with contextlib.suppress(ResourceExistsError):
                        queue.create_queue()
            self._storage_ready = True


_context: DrContext | None = None
_clock: Clock | None = None
_context_lock = threading.Lock()


def get_context() -> DrContext:
    """The process-wide context, built on first use from the environment.

    :raises SettingsError: naming every invalid setting.
    """
    global _context
    with _context_lock:
        if _context is None:
            _context = DrContext.from_settings(load_settings(), clock=_clock)
        return _context


def reset_context(context: DrContext | None = None, *, clock: Clock | None = None) -> None:
    """Replace the process-wide context (tests; a settings reload).

    ``clock`` is used by the contexts built from then on. Only code can set it (the local
    world moves the app's clock together with the APIM emulator's); no app setting can, so
    production always runs on the system clock.
    """
    global _context, _clock
    with _context_lock:
        _context = context
        _clock = clock
