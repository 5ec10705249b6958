"""What the faces (the HTTP API, the CLI, the triggers) may ask for: the use cases, each built on demand.

The wiring (:mod:`dr_core.context`) implements this; the faces depend on it alone, never on the
wiring or an adapter. Each call builds a fresh use case (cheap: no I/O), so one invocation's
discovery results never leak into the next, and an adapter (and its SDK) is created only when a
use case that needs it is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dr_core.backup.planner import BackupPlanner
    from dr_core.catalog.listing import BackupCatalog
    from dr_core.copies.copier import BackupCopies
    from dr_core.drills.drills import Drills
    from dr_core.jobs.operations import Operations
    from dr_core.jobs.watchdog import Watchdog
    from dr_core.jobs.worker import Worker
    from dr_core.kernel.clock import Clock
    from dr_core.posture.rpo import RpoMonitor
    from dr_core.posture.status import PostureStatus
    from dr_core.restore.restorer import Restorer
    from dr_core.retention.pruner import RetentionPruner
    from dr_core.snapshots.restoring import SnapshotRestorer
    from dr_core.standby.sync import StandbySync

__all__ = ["UseCases"]


class UseCases(Protocol):
    @property
    def clock(self) -> Clock: ...

    def planner(self) -> BackupPlanner: ...

    def worker(self) -> Worker: ...

    def watchdog(self) -> Watchdog: ...

    def operations(self) -> Operations: ...

    def restorer(self) -> Restorer: ...

    def snapshot_restorer(self) -> SnapshotRestorer: ...

    def catalog(self) -> BackupCatalog: ...

    def rpo_monitor(self) -> RpoMonitor: ...

    def posture_status(self) -> PostureStatus: ...

    def retention(self) -> RetentionPruner: ...

    def standby_sync(self) -> StandbySync: ...

    def drills(self) -> Drills: ...

    def copies(self) -> BackupCopies: ...
