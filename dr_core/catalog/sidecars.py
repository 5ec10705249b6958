"""A recovery point and its sidecars: the documents other features keep next to it, named after it.

A native backup has its manifest (``{blob}.manifest.json``, dr_core/backup/manifest.py) and, once the
companion export exists, ``{blob}.companion.json`` (dr_core/companion/document.py). Everything that
handles a recovery point as a whole (the copy to the second account, retention's delete) asks this
module which blobs make it up, so a new sidecar is added here once and copied and pruned with its
point. A sidecar that does not exist is simply not there (a backup whose manifest was never written).
"""

from __future__ import annotations

from .entry import CatalogEntry, RecoveryPointKind

__all__ = ["COMPANION_SUFFIX", "MANIFEST_SUFFIX", "SIDECAR_SUFFIXES", "recovery_point_blobs", "sidecar_names"]

# The same suffixes as dr_core.backup.manifest.MANIFEST_SUFFIX and dr_core.companion.document.COMPANION_SUFFIX
# (the catalog cannot import those capabilities; tests/unit/catalog/test_sidecars.py keeps them equal).
MANIFEST_SUFFIX = ".manifest.json"
COMPANION_SUFFIX = ".companion.json"

SIDECAR_SUFFIXES: dict[RecoveryPointKind, tuple[str, ...]] = {
    RecoveryPointKind.NATIVE_BACKUP: (MANIFEST_SUFFIX, COMPANION_SUFFIX),
    RecoveryPointKind.SNAPSHOT: (COMPANION_SUFFIX,),
}


def sidecar_names(entry: CatalogEntry) -> tuple[str, ...]:
    """The blob names of ``entry``'s sidecars (in its container), whether or not they exist."""
    return tuple(entry.blob_name + suffix for suffix in SIDECAR_SUFFIXES.get(entry.kind, ()))


def recovery_point_blobs(entry: CatalogEntry) -> tuple[str, ...]:
    """Every blob of the recovery point: its sidecars first, the point itself last.

    In that order a copy is complete once its point exists: the catalog (which finds points by their
    tags) never shows a copied point whose sidecars are still missing.
    """
    return (*sidecar_names(entry), entry.blob_name)
