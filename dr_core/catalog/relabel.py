"""Backups labelled before the one-query catalog: found, given the catalog tag, and so catalogued again.

Before the ``apimdr_catalog`` tag, apim-dr labelled each finished backup with single index tags
only. The catalog query names the catalog tag, so after an upgrade those backups (up to 30 days
of them) would be invisible to the catalog, the restore preflight, the RPO monitor and retention.
:func:`relabel_older_backups` finds them with the old query (service and state), reads their
single tags and adds the catalog tag built from them (Set Blob Tags, which immutability allows;
metadata untouched). It runs for each instance in every retention run (daily) and on demand
(``apim-dr backups relabel``). Once every older backup has the tag, a run costs one tag query per
instance and writes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from dr_core.kernel.errors import DrError
from dr_core.kernel.wire import JsonObject

from .entry import CatalogEntry
from .tags import catalog_tags_for, entry_from_tags

if TYPE_CHECKING:
    from dr_core.kernel.settings import ProtectedInstance
    from dr_core.ports import BackupStore

__all__ = ["LOG_PREFIX", "RelabelOutcome", "RelabelResult", "relabel_in_a_run", "relabel_older_backups"]

logger = logging.getLogger(__name__)
LOG_PREFIX = "APIMDR_RELABEL "  # with the space, as every APIMDR_* literal: a scan of the code finds it


class RelabelOutcome(StrEnum):
    RELABELLED = "relabelled"
    WOULD_RELABEL = "would-relabel"  # dry run
    FAILED = "failed"


@dataclass(frozen=True)
class RelabelResult:
    container: str
    blob_name: str
    outcome: RelabelOutcome
    entry: CatalogEntry | None = None  # what the catalog shows for it from now on
    detail: str | None = None

    def to_json(self) -> JsonObject:
        return {"container": self.container, "blobName": self.blob_name, "outcome": self.outcome.value,
                "detail": self.detail}


def relabel_older_backups(backups: BackupStore, container: str, service_name: str, *, known: set[str],
                          dry_run: bool) -> list[RelabelResult]:
    """Give every finished backup of ``service_name`` the catalog misses (not in ``known``) the catalog tag.

    ``known`` holds the blob names the catalog query returned. A blob whose tags do not make a
    catalog entry (not apim-dr's, or changed by hand) is left alone and not reported.

    :raises AzureUnavailableError: the old query could not be made (nothing was written).
    """
    results = []
    for name in backups.finished_names(container, service_name):
        if name in known:
            continue
        try:
            tags = backups.tags(container, name)
            relabelled = catalog_tags_for(tags) if tags is not None else None
            entry = entry_from_tags(container, name, relabelled) if relabelled is not None else None
            if relabelled is None or entry is None:
                continue
            if not dry_run:
                backups.set_tags(container, name, relabelled)
        except DrError as e:
            result = RelabelResult(container, name, RelabelOutcome.FAILED, detail=f"({e.error_code}) {e.message}")
            _log(result, logging.ERROR)
            results.append(result)
            continue
        result = RelabelResult(container, name,
                               RelabelOutcome.WOULD_RELABEL if dry_run else RelabelOutcome.RELABELLED, entry=entry)
        _log(result, logging.INFO)
        results.append(result)
    return results


def relabel_in_a_run(backups: BackupStore, instance: ProtectedInstance, entries: list[CatalogEntry], *,
                     dry_run: bool) -> list[RelabelResult]:
    """:func:`relabel_older_backups` of ``instance`` beside its catalog ``entries``, for a timer's run.

    A failed look (the older query) is logged and reads as "none": the run goes on with the catalog as
    it is, and the next run looks again. A result's ``entry`` is what the catalog shows for it now.
    """
    try:
        return relabel_older_backups(backups, instance.container, instance.name,
                                     known={e.blob_name for e in entries}, dry_run=dry_run)
    except DrError as e:
        logger.warning("%s: backups labelled before the catalog tag could not be looked for (%s); the next run "
                       "tries again", instance.name, e.message)
        return []


def _log(result: RelabelResult, level: int) -> None:
    line = {**result.to_json(), "why": "labelled before the catalog tag: the catalog query does not find it"}
    logger.log(level, "%s%s", LOG_PREFIX, json.dumps(line, separators=(",", ":")))
