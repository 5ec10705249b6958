"""What a retention run did, per backup and per instance: its outcomes, as the CLI and the logs show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from dr_core.catalog.relabel import RelabelOutcome, RelabelResult
from dr_core.kernel.clock import iso, iso_or_none
from dr_core.kernel.errors import DrError
from dr_core.kernel.settings import ProtectedInstance
from dr_core.kernel.wire import JsonObject

from .plan import Decision

__all__ = ["BackupResult", "InstanceReport", "Outcome", "RetentionReport"]


class Outcome(StrEnum):
    KEPT = "kept"
    WOULD_DELETE = "would-delete"  # dry run
    DELETED = "deleted"
    MISSING = "missing"  # already gone (another run, a person): nothing to do
    SKIPPED_IMMUTABLE = "skipped-immutable"
    FAILED = "failed"


@dataclass
class BackupResult:
    decision: Decision
    outcome: Outcome
    detail: str | None = None
    sidecars_deleted: list[str] = field(default_factory=list)
    sidecar_problems: list[str] = field(default_factory=list)
    sidecar_failed: bool = False

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED or self.sidecar_failed

    def to_json(self) -> JsonObject:
        entry = self.decision.entry
        return {
            "blobName": entry.blob_name,
            "createdAt": iso(entry.created),
            "expiresAt": iso_or_none(entry.expires),
            "ageDays": round(self.decision.age_days, 1),
            "sku": entry.sku,
            "action": self.decision.action.value,
            "reason": self.decision.reason.value,
            "keptBy": [reason.value for reason in self.decision.kept_by],
            "kind": entry.kind.value,
            "why": self.decision.why,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "sidecarsDeleted": list(self.sidecars_deleted),
            "sidecarProblems": list(self.sidecar_problems),
        }


@dataclass
class InstanceReport:
    instance: ProtectedInstance
    results: list[BackupResult] = field(default_factory=list)
    error: DrError | None = None
    # Older backups (labelled before the catalog tag) found and given it, or that would be (dry run).
    relabelled: list[RelabelResult] = field(default_factory=list)
    # None: the backup account; else the copy account these are the instance's copies in.
    account: str | None = None

    def to_json(self) -> JsonObject:
        posture = self.instance.posture
        error = None if self.error is None else {"code": self.error.error_code, "message": self.error.message,
                                                 "remediation": self.error.remediation}
        return {
            "instance": str(self.instance.resource_id),
            "serviceName": self.instance.name,
            "container": self.instance.container,
            "copyAccount": self.account,
            "keepLast": posture.keep_last,
            "maxAgeDays": posture.max_age_days,
            "keepDaily": posture.keep_daily,
            "keepWeekly": posture.keep_weekly,
            "keepMonthly": posture.keep_monthly,
            "backups": [r.to_json() for r in self.results],
            "relabelled": [r.to_json() for r in self.relabelled],
            "error": error,
        }


@dataclass
class RetentionReport:
    dry_run: bool
    generated_at: datetime
    instances: list[InstanceReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)

    @property
    def results(self) -> list[BackupResult]:
        return [r for inst in self.instances for r in inst.results]

    def totals(self) -> dict[str, int]:
        counts = {outcome.value: 0 for outcome in Outcome}
        for result in self.results:
            counts[result.outcome.value] += 1
        return {
            "instances": len(self.instances),
            "backups": len(self.results),
            "kept": counts[Outcome.KEPT],
            "wouldDelete": counts[Outcome.WOULD_DELETE],
            "deleted": counts[Outcome.DELETED],
            "missing": counts[Outcome.MISSING],
            "skippedImmutable": counts[Outcome.SKIPPED_IMMUTABLE],
            "failed": sum(1 for r in self.results if r.failed),
            "instanceErrors": sum(1 for inst in self.instances if inst.error is not None),
            "relabelled": sum(1 for inst in self.instances for r in inst.relabelled
                              if r.outcome is not RelabelOutcome.FAILED),
            "notReached": len(self.not_reached),
        }

    @property
    def failed(self) -> bool:
        totals = self.totals()
        return bool(totals["failed"] or totals["instanceErrors"])

    def to_json(self) -> JsonObject:
        return {
            "dryRun": self.dry_run,
            "generatedAt": iso(self.generated_at),
            "instances": [inst.to_json() for inst in self.instances],
            "problems": list(self.problems),
            "notReached": list(self.not_reached),
            "totals": self.totals(),
        }
