"""Whether a copied blob is the blob it was copied from: by size, and by checksum where Azure gives one.

Which checksum: a blob's ``Content-MD5`` property. Blob Storage computes it for a blob written in one
request (Put Blob; Put Blob From URL, whose answer also carries the MD5 the service computed over the
bytes it wrote), but not for one assembled from blocks (Put Block List), unless the writer set it. So:

- the source has an MD5: the copy's stored MD5 and the MD5 the copy's answer carried must both equal it
  (the copy request also sent it as ``x-ms-source-content-md5``, so Azure compared it with the bytes it
  read before writing anything);
- the source has none: the sizes must match, and the MD5 Azure computed for the copy is recorded, so a
  later check has something to compare with. ``checksum`` says which of the two applied.

CRC64 (``x-ms-content-crc64``) is returned per request only, never stored on a blob, so it cannot be
compared with the source afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dr_core.ports import BlobCopy, CopyOutcome

__all__ = ["Checksum", "Verification", "verify_copy"]


class Checksum(StrEnum):
    MD5 = "md5"  # size and Content-MD5 compared
    SIZE = "size"  # the source has no Content-MD5: size compared, the copy's MD5 recorded


@dataclass(frozen=True)
class Verification:
    ok: bool
    checksum: Checksum | None
    detail: str
    md5: str | None = None  # the copy's Content-MD5 (base64), when verified


def verify_copy(result: BlobCopy) -> Verification:
    """Compare a copied blob with its source (pure)."""
    name = result.blob_name
    if result.outcome is CopyOutcome.SOURCE_MISSING or result.source is None:
        return Verification(False, None, f"{name} is not in the backup account: nothing was copied")
    source, copy = result.source, result.copy
    if copy is None:
        return Verification(False, None, f"{name}: the copy cannot be found after copying it")
    if copy.size != source.size:
        return Verification(False, None, f"{name}: the copy has {copy.size} bytes, the source {source.size}")
    if source.content_md5:
        if copy.content_md5 != source.content_md5:
            return Verification(False, Checksum.MD5, f"{name}: the copy's Content-MD5 {copy.content_md5} differs "
                                f"from the source's {source.content_md5}")
        if result.service_md5 is not None and result.service_md5 != source.content_md5:
            return Verification(False, Checksum.MD5, f"{name}: Blob Storage computed MD5 {result.service_md5} over "
                                f"the bytes it wrote; the source's is {source.content_md5}")
        return Verification(True, Checksum.MD5, f"{source.size} bytes, Content-MD5 {source.content_md5} on both sides",
                            copy.content_md5)
    md5 = copy.content_md5 or result.service_md5
    return Verification(True, Checksum.SIZE, f"{source.size} bytes on both sides; the source has no Content-MD5 "
                        f"(written in blocks), the copy's is {md5 or 'unknown'}", md5)
