"""The catalog use case: the backups of one instance, newest first, and whether each can be restored.

What ``GET /api/backups?service=`` and ``apim-dr backups list`` show, and the relabelling of backups
labelled before the catalog tag (``apim-dr backups relabel``). The catalog lives in storage, so it is
listed even when ARM is down; what could not be checked then is named in ``warnings``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dr_core.kernel.errors import DrError, InvalidRequestError
from dr_core.kernel.wire import JsonObject

from .relabel import RelabelOutcome, RelabelResult, relabel_older_backups

if TYPE_CHECKING:
    from dr_core.copies.choice import RecoveryPointSources
    from dr_core.inventory.resolver import InstanceResolver
    from dr_core.kernel.clock import Clock
    from dr_core.kernel.ids import ApimResourceId
    from dr_core.kernel.settings import ProtectedInstance, Settings
    from dr_core.ports import ApimManagement, BackupStore

    from .entry import CatalogEntry

__all__ = ["BackupCatalog", "CatalogListing", "ListedBackup", "RelabelReport"]


@dataclass(frozen=True)
class ListedBackup:
    entry: CatalogEntry
    restorable: bool
    not_restorable_because: str | None


@dataclass(frozen=True)
class CatalogListing:
    """One instance's catalog, as restorable into ``restorable_into`` (its standby, else itself)."""

    service: ApimResourceId
    restorable_into: ApimResourceId
    backups: list[ListedBackup]
    generated_at: datetime
    target_sku: str | None
    margin: timedelta
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        body: JsonObject = {
            "service": str(self.service),
            "restorableInto": str(self.restorable_into),
            "backups": [b.entry.to_json(now=self.generated_at, target_sku=self.target_sku, margin=self.margin)
                        for b in self.backups],
        }
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return body


@dataclass(frozen=True)
class InstanceRelabel:
    instance: ProtectedInstance
    catalogued: int
    results: list[RelabelResult]

    def to_json(self) -> JsonObject:
        return {"instance": str(self.instance.resource_id), "catalogued": self.catalogued,
                "relabelled": [r.to_json() for r in self.results]}


@dataclass(frozen=True)
class RelabelReport:
    dry_run: bool
    instances: list[InstanceRelabel]
    problems: list[str]

    @property
    def failed(self) -> int:
        return sum(1 for inst in self.instances for r in inst.results if r.outcome is RelabelOutcome.FAILED)

    def to_json(self) -> JsonObject:
        return {"dryRun": self.dry_run, "instances": [i.to_json() for i in self.instances],
                "problems": list(self.problems)}


class BackupCatalog:
    def __init__(self, *, settings: Settings, backups: BackupStore, arm: ApimManagement, resolver: InstanceResolver,
                 clock: Clock, sources: RecoveryPointSources | None = None) -> None:
        self._settings = settings
        self._backups = backups
        # The copy account is listed instead when the backup account is unreachable (dr_core/copies/choice.py).
        self._sources = sources
        self._arm = arm
        self._resolver = resolver
        self._clock = clock

    def list(self, service: str | None) -> CatalogListing:
        """The catalog of the protected instance ``service`` names (resource ID, alias or name), newest first.

        "Restorable" uses the restore preflight's expiry margin and, when the instance has a standby,
        the standby's tier: it means a restore would be accepted.

        :raises InvalidRequestError: ``service`` missing or malformed. :raises UnknownInstanceError: not protected.
        """
        if not service:
            raise InvalidRequestError("query parameter 'service' is required", fields={"service": "required"})
        instance = self._resolver.named(service)
        target_sku = None
        warnings: list[str] = []
        if instance.standby is not None:
            try:
                target_sku = self._arm.get_service(instance.standby).sku
            except DrError as e:
                # The catalog lives in storage: list it anyway, and say what could not be checked.
                warnings.append(f"the standby's tier could not be read, so 'restorable' ignores it: {e.message}")
        now = self._clock.now()
        margin = timedelta(hours=self._settings.expiry_margin_hours)
        listed = []
        if self._sources is not None:
            found = self._sources.catalog(instance, instance.container, instance.name)
            entries = found.value
            if found.source.is_copy:
                warnings.append(f"listed from the copy in {found.source.account}: {found.source.reason}")
        else:
            entries = self._backups.find(instance.container, instance.name)
        for entry in entries:
            restorable, why = entry.restorable_for(target_sku, now=now, margin=margin)
            listed.append(ListedBackup(entry, restorable, why))
        return CatalogListing(instance.resource_id, instance.standby or instance.resource_id, listed, now,
                              target_sku, margin, warnings)

    def relabel(self, service: str | None, *, dry_run: bool) -> RelabelReport:
        """Give the backups labelled before the catalog tag that tag, for one instance or every protected one."""
        selected = self._resolver.select(service)
        instances: list[InstanceRelabel] = []
        for instance in selected.instances:
            known = {e.blob_name for e in self._backups.find(instance.container, instance.name)}
            results = relabel_older_backups(self._backups, instance.container, instance.name, known=known,
                                            dry_run=dry_run)
            instances.append(InstanceRelabel(instance, len(known), results))
        return RelabelReport(dry_run, instances, selected.problems)
