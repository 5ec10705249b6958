"""Backup manifests: what a backup's source contained, written next to the backup when it succeeds.

A backup blob is APIM's own format, which apim-dr cannot read. A restore drill needs to know what
the restored instance should contain, so right after a backup succeeds :class:`ManifestRecorder`
reads the source's APIs, products and named values (names only, three ARM list calls) and writes
them to ``{backup blob}.manifest.json`` in the same container.

Limits, on purpose:

- The names are read when the job is seen to succeed, not at the instant APIM took its snapshot:
  a change made to the source between the snapshot and that read (seconds to a few minutes with
  the default polling) shows up in the manifest but not in the backup. A drill would then report
  it as missing or unexpected.
- A manifest cannot be made later: by then the source has changed. A backup without one (the
  follower never ran, or ARM refused the reads) is not used for drills; see :mod:`dr_core.drills`.
- Written once: an existing manifest is never overwritten (backup containers may be immutable,
  where an overwrite is refused, and the first read is the closest to the backup).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dr_core.jobs.ids import JobKind
from dr_core.kernel.clock import iso, iso_or_none
from dr_core.kernel.errors import DrError
from dr_core.kernel.phases import JobState
from dr_core.kernel.wire import JsonObject
from dr_core.ports import ConfigurationSummary

if TYPE_CHECKING:
    from dr_core.jobs.job import Job
    from dr_core.kernel.clock import Clock
    from dr_core.ports import ApimManagement, BackupStore

__all__ = [
    "COLLECTIONS",
    "MANIFEST_FORMAT",
    "MANIFEST_SUFFIX",
    "ManifestRecorder",
    "manifest_blob_name",
    "summary_from_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "apim-dr/manifest"
# The collections a manifest (and a drill's verification) holds, as named in JSON.
COLLECTIONS = ("apis", "products", "namedValues")
_MAX_NAMES = 10_000  # per collection; far above APIM's own limits, a guard against a hostile document
_MAX_NAME = 256


def manifest_blob_name(backup_blob_name: str) -> str:
    return backup_blob_name + MANIFEST_SUFFIX


def summary_from_manifest(document: JsonObject | None) -> ConfigurationSummary | None:
    """The names a manifest lists; None if it is missing or not a manifest apim-dr wrote."""
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        return None
    lists: list[tuple[str, ...]] = []
    for collection in COLLECTIONS:
        names = document.get(collection)
        if not isinstance(names, list) or len(names) > _MAX_NAMES:
            return None
        if not all(isinstance(n, str) and 0 < len(n) <= _MAX_NAME for n in names):
            return None
        lists.append(tuple(sorted(names)))
    return ConfigurationSummary(*lists)


class ManifestRecorder:
    """:class:`~dr_core.jobs.worker.JobFollower`: after a backup succeeds, write its manifest (once)."""

    def __init__(self, *, arm: ApimManagement, backups: BackupStore, clock: Clock) -> None:
        self._arm = arm
        self._backups = backups
        self._clock = clock

    def after(self, job: Job) -> None:
        if job.kind is not JobKind.BACKUP or job.state is not JobState.SUCCEEDED:
            return
        self.record(job)

    def announces(self, job: Job) -> bool:
        return False

    def record(self, job: Job) -> bool:
        """Write the manifest of ``job``'s backup unless one exists. True if written now.

        Failures are logged, never raised: the backup itself has succeeded either way.
        """
        name = manifest_blob_name(job.blob_name)
        try:
            if self._backups.get_json(job.container, name) is not None:
                return False
            summary = self._arm.configuration_summary(job.resource_id)
            self._backups.put_json(job.container, name, {
                "format": MANIFEST_FORMAT,
                "version": 1,
                "instance": job.instance,
                "backup": job.blob_name,
                "jobId": job.job_id,
                "backupFinishedAt": iso_or_none(job.finished_at),
                "readAt": iso(self._clock.now()),
                **summary.to_json(),
            })
        except DrError as e:
            logger.warning("no manifest for backup %s/%s: (%s) %s; restore drills will not use this backup",
                           job.container, job.blob_name, e.error_code, e.message)
            return False
        logger.info("manifest of %s/%s written", job.container, job.blob_name)
        return True
