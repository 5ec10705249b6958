"""The wiring: the one place that builds adapters and use cases from settings.

One :class:`DrContext` per worker process (or CLI run), built on first use. Adapters (the job
store, restore locks and records over the app's table, the work queue, the backup account, ARM,
the notifier) are created lazily, so the timer never imports the APIM SDK and ``import
function_app`` imports no Azure SDK at all. Use cases are built fresh on each call (cheap: no
I/O) from the adapters they need, never from the context: tests build them with in-memory fakes,
and the faces (:mod:`dr_core.api`, :mod:`dr_core.cli`, the triggers) see only
:class:`~dr_core.usecases.UseCases`, which this implements.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dr_core.kernel.clock import Clock, SystemClock
from dr_core.kernel.settings import Settings, load_settings

if TYPE_CHECKING:
    from dr_core.api.handlers import Api
    from dr_core.azure.clients import AzureClients
    from dr_core.backup.manifest import ManifestRecorder
    from dr_core.backup.planner import BackupPlanner
    from dr_core.catalog.listing import BackupCatalog
    from dr_core.copies.choice import RecoveryPointSources
    from dr_core.copies.copier import BackupCopies
    from dr_core.copies.record import CopyRecord
    from dr_core.drills.drills import Drills
    from dr_core.drills.record import DrillRecord
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.jobs.launcher import JobLauncher
    from dr_core.jobs.locks import RestoreLock
    from dr_core.jobs.operations import Operations
    from dr_core.jobs.pacing import ReadBudget
    from dr_core.jobs.watchdog import Watchdog
    from dr_core.jobs.worker import JobFollower, Worker
    from dr_core.ports import (
        ApimManagement,
        BackupStore,
        BlobCopier,
        ConfigurationReader,
        ConfigurationWriter,
        JobStore,
        Notifier,
        RecordStore,
        RestoreLocks,
        StagingStore,
        WorkQueue,
    )
    from dr_core.posture.record import RpoRecord
    from dr_core.posture.rpo import RpoMonitor
    from dr_core.posture.status import PostureStatus
    from dr_core.records import Records
    from dr_core.restore.restorer import Restorer
    from dr_core.retention.cursor import RetentionCursor
    from dr_core.retention.pruner import RetentionPruner
    from dr_core.snapshots.restoring import SnapshotRestorer
    from dr_core.snapshots.staged import StagedReads
    from dr_core.standby.record import StandbyRecord
    from dr_core.standby.sync import StandbySync

__all__ = ["DrContext", "get_context", "reset_context"]

logger = logging.getLogger(__name__)


@dataclass
class DrContext:
    settings: Settings
    clients: AzureClients
    clock: Clock = field(default_factory=SystemClock)
    _jobs: JobStore | None = field(default=None, repr=False)
    _locks: RestoreLocks | None = field(default=None, repr=False)
    _records: RecordStore | None = field(default=None, repr=False)
    _queue: WorkQueue | None = field(default=None, repr=False)
    _arm: ApimManagement | None = field(default=None, repr=False)
    _backups: BackupStore | None = field(default=None, repr=False)
    _notifier: Notifier | None = field(default=None, repr=False)
    _copy_backups: BackupStore | None = field(default=None, repr=False)
    _copier: BlobCopier | None = field(default=None, repr=False)
    _config_reader: ConfigurationReader | None = field(default=None, repr=False)
    _staging: StagingStore | None = field(default=None, repr=False)
    _config_writer: ConfigurationWriter | None = field(default=None, repr=False)
    _ready_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _storage_ready: bool = field(default=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> DrContext:
        from dr_core.azure.clients import AzureClients

        return cls(settings=settings, clients=AzureClients(settings), clock=clock or SystemClock())

    # -- adapters ----------------------------------------------------------------------------------
    @property
    def jobs(self) -> JobStore:
        if self._jobs is None:
            from dr_core.azure.tables import TableJobStore

            self._jobs = TableJobStore(self.clients.jobs_table())
        self._ensure_storage()
        return self._jobs

    @property
    def locks(self) -> RestoreLocks:
        if self._locks is None:
            from dr_core.azure.tables import TableRestoreLocks

            self._locks = TableRestoreLocks(self.clients.jobs_table())
        self._ensure_storage()
        return self._locks

    @property
    def records(self) -> RecordStore:
        if self._records is None:
            from dr_core.azure.tables import TableRecordStore

            self._records = TableRecordStore(self.clients.jobs_table())
        self._ensure_storage()
        return self._records

    @property
    def queue(self) -> WorkQueue:
        if self._queue is None:
            from dr_core.azure.queues import StorageWorkQueue

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
    def copy_backups(self) -> BackupStore | None:
        """The copy account (None when APIM_DR_COPY_STORAGE_ACCOUNT is not set): its catalog, tags, deletes."""
        account = self.settings.copy_account
        if account is None:
            return None
        if self._copy_backups is None:
            from dr_core.azure.blobs import BlobBackupStore

            self._copy_backups = BlobBackupStore(self.clients.copy_blobs(), account=account)
        return self._copy_backups

    @property
    def copier(self) -> BlobCopier | None:
        """Server-side copies from the backup account to the copy account (None without a copy account)."""
        account = self.settings.copy_account
        if account is None:
            return None
        if self._copier is None:
            from dr_core.azure.copies import BlobServerSideCopier

            self._copier = BlobServerSideCopier(self.clients.backup_blobs(), self.clients.copy_blobs(),
                                                self.clients.credential, source_account=self.settings.backup_account,
                                                target_account=account)
        return self._copier

    @property
    def config_reader(self) -> ConfigurationReader:
        if self._config_reader is None:
            from dr_core.azure.config import ApimConfigurationReader

            self._config_reader = ApimConfigurationReader(self.clients)
        return self._config_reader

    @property
    def config_writer(self) -> ConfigurationWriter:
        if self._config_writer is None:
            from dr_core.azure.config import ApimConfigurationWriter

            self._config_writer = ApimConfigurationWriter(self.clients)
        return self._config_writer

    @property
    def staging(self) -> StagingStore:
        if self._staging is None:
            from dr_core.azure.staging import BlobStagingStore

            self._staging = BlobStagingStore(self.clients.app_blobs())
        return self._staging

    def staged_reads(self) -> StagedReads:
        from dr_core.snapshots.staged import StagedReads

        return StagedReads(reader=self.config_reader, budget=self.read_budget(), staging=self.staging)

    def read_budget(self) -> ReadBudget:
        from dr_core.jobs.pacing import ReadBudget

        return ReadBudget(self.records, reads_per_second=self.settings.snapshot_reads_per_second)

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            from dr_core.azure.notifier import LogNotifier, WebhookNotifier

            url = self.settings.webhook_url
            self._notifier = WebhookNotifier(url.reveal()) if url else LogNotifier()
        return self._notifier

    def _ensure_storage(self) -> None:
        # In Azure, infra/ creates the table and queues; locally they may not exist yet. Once per process.
        if self._storage_ready:
            return
        with self._ready_lock:
            if not self._storage_ready:
                self.clients.ensure_app_storage()
                self._storage_ready = True

    # -- what use cases share ----------------------------------------------------------------------
    def resolver(self) -> InstanceResolver:
        """A fresh resolver: discovery results are not kept across invocations."""
        from dr_core.inventory.resolver import InstanceResolver

        return InstanceResolver(self.settings, self.arm if self.settings.discovery_subscriptions else None)

    def launcher(self) -> JobLauncher:
        from dr_core.jobs.launcher import JobLauncher

        return JobLauncher(jobs=self.jobs, queue=self.queue)

    def restore_lock(self) -> RestoreLock:
        from dr_core.jobs.locks import RestoreLock

        return RestoreLock(jobs=self.jobs, locks=self.locks)

    def rpo_records(self) -> Records[RpoRecord]:
        from dr_core.posture.record import RpoRecord
        from dr_core.records import Records

        return Records(self.records, RpoRecord)

    def standby_records(self) -> Records[StandbyRecord]:
        from dr_core.records import Records
        from dr_core.standby.record import StandbyRecord

        return Records(self.records, StandbyRecord)

    def drill_records(self) -> Records[DrillRecord]:
        from dr_core.drills.record import DrillRecord
        from dr_core.records import Records

        return Records(self.records, DrillRecord)

    def copy_records(self) -> Records[CopyRecord]:
        from dr_core.copies.record import CopyRecord
        from dr_core.records import Records

        return Records(self.records, CopyRecord)

    def recovery_point_sources(self) -> RecoveryPointSources:
        """Where recovery points are read: the backup account, or its copy when it is unreachable."""
        from dr_core.copies.choice import RecoveryPointSources

        return RecoveryPointSources(primary=self.backups, primary_account=self.settings.backup_account,
                                    copies=self.copy_backups, copy_account=self.settings.copy_account)

    def retention_cursor(self) -> Records[RetentionCursor]:
        from dr_core.records import Records
        from dr_core.retention.cursor import RetentionCursor

        return Records(self.records, RetentionCursor)

    # -- use cases (dr_core.usecases.UseCases) ---------------------------------------------------------
    def planner(self) -> BackupPlanner:
        from dr_core.backup.planner import BackupPlanner

        return BackupPlanner(settings=self.settings, launcher=self.launcher(), resolver=self.resolver(),
                             clock=self.clock)

    def worker(self, *, followers: Sequence[JobFollower] | None = None) -> Worker:
        """The queue worker, with the work that follows a job's end: manifest, RPO, standby sync, drill check.

        The manifest comes first: it is read from the source, and the sooner after the backup the better.
        ``followers`` replaces them (tests).
        """
        from dr_core.jobs.arm_operation import ArmOperation
        from dr_core.jobs.ids import JobKind
        from dr_core.jobs.pacing import ReadBudget
        from dr_core.jobs.worker import Journal, Worker
        from dr_core.posture.rpo import RpoFollower
        from dr_core.snapshots.capture import SnapshotCapture
        from dr_core.snapshots.restoring import ConfigRestore

        resolver = self.resolver()  # one per invocation, shared: discovery runs at most once for all followers
        if followers is None:
            followers = [self.manifests(), RpoFollower(self.rpo_monitor(resolver=resolver), self.settings),
                         self.standby_sync(resolver=resolver), self.drills(resolver=resolver)]
            if self.settings.copy_account is not None:  # after the manifest, which it copies along
                followers.insert(1, self.copies(resolver=resolver))
        journal = Journal(jobs=self.jobs, queue=self.queue, lock=self.restore_lock(), notifier=self.notifier,
                          clock=self.clock, followers=followers)
        operation = ArmOperation(settings=self.settings, arm=self.arm, backups=self.backups, journal=journal,
                                 clock=self.clock)
        capture = SnapshotCapture(arm=self.arm, reads=self.staged_reads(), backups=self.backups, journal=journal,
                                  clock=self.clock)
        config_restore = ConfigRestore(arm=self.arm, reads=self.staged_reads(), writer=self.config_writer,
                                       backups=self.backups, staging=self.staging, read_budget=self.read_budget(),
                                       write_budget=ReadBudget.for_writes(self.records), journal=journal,
                                       clock=self.clock)
        return Worker(jobs=self.jobs, queue=self.queue, journal=journal,
                      handlers={**{kind: operation for kind in ArmOperation.kinds},
                                **{kind: capture for kind in SnapshotCapture.kinds},
                                **{kind: config_restore for kind in ConfigRestore.kinds}},
                      timeout_minutes={JobKind.BACKUP: self.settings.backup_timeout_minutes,
                                       JobKind.RESTORE: self.settings.restore_timeout_minutes,
                                       JobKind.SNAPSHOT: self.settings.snapshot_timeout_minutes,
                                       JobKind.CONFIG_RESTORE: self.settings.restore_timeout_minutes},
                      clock=self.clock)

    def watchdog(self) -> Watchdog:
        from dr_core.jobs.watchdog import Watchdog

        return Watchdog(jobs=self.jobs, queue=self.queue, clock=self.clock)

    def operations(self) -> Operations:
        from dr_core.jobs.operations import Operations

        return Operations(jobs=self.jobs)

    def manifests(self) -> ManifestRecorder:
        from dr_core.backup.manifest import ManifestRecorder

        return ManifestRecorder(arm=self.arm, backups=self.backups, clock=self.clock)

    def restorer(self, *, resolver: InstanceResolver | None = None) -> Restorer:
        from dr_core.restore.preflight import Preflight
        from dr_core.restore.restorer import Restorer

        lock = self.restore_lock()
        preflight = Preflight(settings=self.settings, arm=self.arm, backups=self.backups, lock=lock,
                              resolver=resolver or self.resolver(), clock=self.clock,
                              sources=self.recovery_point_sources())
        return Restorer(settings=self.settings, preflight=preflight, launcher=self.launcher(), lock=lock,
                        clock=self.clock)

    def snapshot_restorer(self) -> SnapshotRestorer:
        from dr_core.snapshots.restoring import SnapshotRestorer

        return SnapshotRestorer(settings=self.settings, arm=self.arm, backups=self.backups, resolver=self.resolver(),
                                lock=self.restore_lock(), launcher=self.launcher(), clock=self.clock)

    def catalog(self) -> BackupCatalog:
        from dr_core.catalog.listing import BackupCatalog

        return BackupCatalog(settings=self.settings, backups=self.backups, arm=self.arm, resolver=self.resolver(),
                             clock=self.clock, sources=self.recovery_point_sources())

    def rpo_monitor(self, *, resolver: InstanceResolver | None = None) -> RpoMonitor:
        from dr_core.posture.rpo import RpoMonitor

        return RpoMonitor(settings=self.settings, records=self.rpo_records(), backups=self.backups,
                          notifier=self.notifier, resolver=resolver or self.resolver(), clock=self.clock)

    def posture_status(self) -> PostureStatus:
        from dr_core.posture.status import PostureStatus

        return PostureStatus(settings=self.settings, jobs=self.jobs, rpo=self.rpo_records(),
                             standbys=self.standby_records(), drills=self.drill_records(), backups=self.backups,
                             resolver=self.resolver(), clock=self.clock,
                             copies=self.copy_records() if self.settings.copy_account else None)

    def retention(self) -> RetentionPruner:
        from dr_core.retention.pruner import RetentionPruner

        return RetentionPruner(settings=self.settings, jobs=self.jobs, cursor=self.retention_cursor(),
                               backups=self.backups, resolver=self.resolver(), clock=self.clock,
                               copy_backups=self.copy_backups, copy_account=self.settings.copy_account)

    def standby_sync(self, *, resolver: InstanceResolver | None = None) -> StandbySync:
        from dr_core.standby.sync import StandbySync

        resolver = resolver or self.resolver()
        return StandbySync(settings=self.settings, records=self.standby_records(), jobs=self.jobs,
                           lock=self.restore_lock(), restorer=self.restorer(resolver=resolver), resolver=resolver,
                           backups=self.backups, notifier=self.notifier, clock=self.clock)

    def drills(self, *, resolver: InstanceResolver | None = None) -> Drills:
        from dr_core.drills.drills import Drills

        resolver = resolver or self.resolver()
        return Drills(settings=self.settings, records=self.drill_records(), jobs=self.jobs, lock=self.restore_lock(),
                      restorer=self.restorer(resolver=resolver), resolver=resolver, arm=self.arm,
                      backups=self.backups, notifier=self.notifier, clock=self.clock)

    def copies(self, *, resolver: InstanceResolver | None = None) -> BackupCopies:
        """Copies to the second account. :raises ConfigurationError: APIM_DR_COPY_STORAGE_ACCOUNT is not set."""
        from dr_core.copies.copier import BackupCopies
        from dr_core.kernel.errors import ConfigurationError

        copy_backups, copier = self.copy_backups, self.copier
        if copy_backups is None or copier is None:
            raise ConfigurationError("no copy account is configured", remediation="Set APIM_DR_COPY_STORAGE_ACCOUNT "
                                     "(infra: copyStorageLocation) to copy backups to a second region.")
        from dr_core.copies.record import CopyCursor
        from dr_core.records import Records

        return BackupCopies(settings=self.settings, backups=self.backups, copies=copy_backups, copier=copier,
                            records=self.copy_records(), resolver=resolver or self.resolver(), clock=self.clock,
                            cursor=Records(self.records, CopyCursor))

    # -- the faces ---------------------------------------------------------------------------------------
    def api(self) -> Api:
        from dr_core.api.handlers import Api

        return Api(self)


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
