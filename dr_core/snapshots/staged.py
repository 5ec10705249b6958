"""Reading an instance's whole configuration across invocations: the engine a snapshot and a restore share.

The queue of reads still to make and the items read so far live in the staging container under
the job's ID, versioned by step (:class:`~dr_core.snapshots.progress.SnapshotProgress.step`). Each
call of :meth:`StagedReads.step` takes reads from the subscription's shared budget, makes them (a
few at a time), writes what they returned as a new chunk and the reads left as a new state, and
tells the caller what to commit on its job: go on, wait (budget, throttling, outage), fail (ARM
refused for good), or done (the items). Nothing here saves the job: the caller commits the step, so a
crash between the staging writes and that commit leaves the old step in force and the half-written
one is overwritten. A state or chunk that went missing (scratch space cleaned by hand) starts the
reading over rather than failing.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError
from dr_core.kernel.threads import parallel_map

from .document import NotCaptured, SnapshotItem
from .kinds import parse_item_id
from .progress import SnapshotProgress
from .reading import ReadTask, first_reads, items_and_reads
from .sanitize import item_properties

if TYPE_CHECKING:
    from dr_core.jobs.pacing import ReadBudget
    from dr_core.kernel.ids import ApimResourceId
    from dr_core.ports import ConfigPage, ConfigurationReader, StagingStore

__all__ = ["PARALLEL_READS", "READS_PER_STEP", "ReadStep", "StagedReads"]

logger = logging.getLogger(__name__)

READS_PER_STEP = 200  # at most this many reads per invocation (about 10 s at ARM's pace)
PARALLEL_READS = 8  # reads in flight at once within a step
UNREACHABLE_DELAY = 30
_STAGING_FORMAT = 1


@dataclass(frozen=True)
class ReadStep:
    """What a step of reading came to, for the caller to commit.

    ``progress`` is the new counters (always); then exactly one of: ``delay`` > 0 or 0 with ``reason``
    (go on after it), ``error`` (fail the job), ``items`` (everything is read).
    """

    progress: SnapshotProgress
    delay: int = 0
    reason: str | None = None
    error: ArmError | None = None
    items: list[SnapshotItem] | None = None
    not_captured: list[NotCaptured] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.items is not None


@dataclass
class _State:
    """The staging state between steps: the reads still to make, the chunks written so far."""

    tasks: list[ReadTask]
    chunks: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return json.dumps({"v": _STAGING_FORMAT, "tasks": [t.to_json() for t in self.tasks],
                           "chunks": self.chunks}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> _State:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("v") != _STAGING_FORMAT:
            raise ValueError("not a snapshot staging state")
        chunks = body.get("chunks")
        if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
            raise ValueError("a staging state's chunks are names")
        return cls([ReadTask.from_json(t) for t in body.get("tasks") or []], list(chunks))


@dataclass
class _Outcome:
    task: ReadTask
    page: ConfigPage | None = None
    error: ArmError | None = None
    unreachable: bool = False


class StagedReads:
    """Reads one instance's configuration for one job, a step at a time."""

    def __init__(self, *, reader: ConfigurationReader, budget: ReadBudget, staging: StagingStore) -> None:
        self._reader = reader
        self._budget = budget
        self._staging = staging

    def begin(self, scope: str, tier: str | None, progress: SnapshotProgress) -> SnapshotProgress:
        """Write the first queue of reads for the tier; the counters to commit (``progress`` goes on counting)."""
        tasks = first_reads(tier)
        step = progress.step + 1
        self._staging.put(_state_name(scope, step), _State(tasks).to_bytes())
        return replace(progress, step=step, pending=len(tasks), items=0, vanished=0, not_captured=0, tier=tier)

    def step(self, scope: str, instance: ApimResourceId, progress: SnapshotProgress, *, now: datetime) -> ReadStep:
        """Read on from where ``progress`` stands (``scope``: the job's ID, which names its staging blobs)."""
        state = self._load(scope, progress)
        if state is None:
            return self._restart(scope, progress, "the staging state is missing or damaged")
        if not state.tasks:
            return self._collect(scope, progress, state)
        grant = self._budget.take(instance.subscription_id, min(len(state.tasks), READS_PER_STEP), now=now)
        if grant.granted == 0:
            return ReadStep(progress, delay=_delay(grant.retry_after), reason="waiting for ARM's read budget")
        batch, rest = state.tasks[:grant.granted], state.tasks[grant.granted:]
        outcomes = parallel_map(lambda task: self._read_one(instance, task), batch, max_workers=PARALLEL_READS,
                                name="config-read")
        absorbed = _absorb(outcomes, str(instance), replace(progress, reads=progress.reads + len(batch)))
        if absorbed.error is not None:
            return ReadStep(absorbed.progress, error=absorbed.error)
        step = absorbed.progress.step + 1
        chunk = _chunk_name(scope, step)
        self._staging.put(chunk, _chunk_bytes(absorbed.items, absorbed.missing))
        new_state = _State(absorbed.again + rest + absorbed.added, [*state.chunks, chunk])
        self._staging.put(_state_name(scope, step), new_state.to_bytes())
        progress = replace(absorbed.progress, step=step, items=absorbed.progress.items + len(absorbed.items),
                           pending=len(new_state.tasks),
                           not_captured=absorbed.progress.not_captured + len(absorbed.missing))
        if absorbed.wait:
            return ReadStep(progress, delay=_delay(absorbed.wait),
                            reason="ARM throttled or unreachable; reading again after Retry-After")
        return ReadStep(progress)

    def clean_up(self, scope: str) -> None:
        self._staging.delete_prefix(f"{scope}/")

    def _read_one(self, instance: ApimResourceId, task: ReadTask) -> _Outcome:
        try:
            return _Outcome(task, page=self._reader.read(instance, task.kind, task.names, page=task.page,
                                                         single=task.single))
        except ArmCallError as e:
            return _Outcome(task, error=e.error)
        except AzureUnavailableError:
            return _Outcome(task, unreachable=True)

    def _collect(self, scope: str, progress: SnapshotProgress, state: _State) -> ReadStep:
        items: list[SnapshotItem] = []
        missing: list[NotCaptured] = []
        for chunk in state.chunks:
            data = self._staging.get(chunk)
            try:
                if data is None:
                    raise ValueError("missing")
                chunk_items, chunk_missing = _chunk_from_bytes(data)
            except (ValueError, KeyError, TypeError, OSError) as e:
                return self._restart(scope, progress, f"staging chunk {chunk} is {e}")
            items += chunk_items
            missing += chunk_missing
        return ReadStep(progress, items=_unique(items), not_captured=missing)

    def _load(self, scope: str, progress: SnapshotProgress) -> _State | None:
        data = self._staging.get(_state_name(scope, progress.step))
        if data is None:
            return None
        try:
            return _State.from_bytes(data)
        except (ValueError, KeyError):
            return None

    def _restart(self, scope: str, progress: SnapshotProgress, why: str) -> ReadStep:
        logger.warning("configuration reading of %s starts over: %s", scope, why)
        fresh = self.begin(scope, progress.tier, progress)
        return ReadStep(fresh, reason=f"reading again: {why}"[:200])


@dataclass
class _Absorbed:
    """What one step's answers came to: items, reads to add or to make again, and how long to wait."""

    progress: SnapshotProgress
    items: list[SnapshotItem] = field(default_factory=list)
    missing: list[NotCaptured] = field(default_factory=list)
    again: list[ReadTask] = field(default_factory=list)
    added: list[ReadTask] = field(default_factory=list)
    wait: float = 0.0
    error: ArmError | None = None


def _absorb(outcomes: list[_Outcome], service_id: str, progress: SnapshotProgress) -> _Absorbed:
    out = _Absorbed(progress)
    for outcome in outcomes:
        if outcome.page is not None:
            found, reads = items_and_reads(outcome.task, outcome.page, out.progress.tier)
            for item_id, body in found:
                properties, left_out = item_properties(item_id, body, service_id=service_id)
                out.items.append(SnapshotItem(item_id, properties))
                out.missing += left_out
            out.added += reads
            continue
        error = outcome.error
        if outcome.unreachable or (error is not None and error.retryable):
            out.again.append(outcome.task)
            throttled = int(error is not None and error.status == 429)
            out.progress = replace(out.progress, throttled=out.progress.throttled + throttled)
            out.wait = max(out.wait, (error.retry_after if error and error.retry_after else UNREACHABLE_DELAY))
        elif error is not None and error.status == 404:
            out.progress = replace(out.progress, vanished=out.progress.vanished + 1)  # deleted while it was read
        elif error is not None and error.status == 400:
            out.missing.append(NotCaptured(outcome.task.describe(), f"ARM refused the read: {error.message[:200]}"))
        else:
            out.error = error
            return out
    return out


def _state_name(scope: str, step: int) -> str:
    return f"{scope}/state-{step:06d}.json"


def _chunk_name(scope: str, step: int) -> str:
    return f"{scope}/items-{step:06d}.json.gz"


def _chunk_bytes(items: list[SnapshotItem], missing: list[NotCaptured]) -> bytes:
    body = {"items": [i.to_json() for i in items], "notCaptured": [n.to_json() for n in missing]}
    return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), compresslevel=3)


def _chunk_from_bytes(data: bytes) -> tuple[list[SnapshotItem], list[NotCaptured]]:
    body = json.loads(gzip.decompress(data))
    items = [SnapshotItem(parse_item_id(raw["id"]), raw.get("properties") or {}) for raw in body.get("items") or []]
    missing = [NotCaptured(str(raw["id"]), str(raw["reason"])) for raw in body.get("notCaptured") or []]
    return items, missing


def _unique(items: list[SnapshotItem]) -> list[SnapshotItem]:
    """An item listed twice (a page re-read after a crash, a list that shifted between pages): keep the last."""
    by_id = {str(i.item_id).lower(): i for i in items}
    return list(by_id.values())


def _delay(seconds: float) -> int:
    return max(1, math.ceil(seconds))
