"""Server-side copies from the backup account to the copy account (azure-storage-blob), no data through the app.

Which Blob REST operation, and why (https://learn.microsoft.com/rest/api/storageservices/):

- **Put Blob From URL** (``BlobClient.upload_blob_from_url``), for sources up to 5000 MiB: one synchronous
  request to the copy account, which reads the source itself. The source is authorized with the app's own
  Entra token in ``x-ms-copy-source-authorization: Bearer ...`` (version 2020-10-02 and later; the bearer
  scheme is the only one supported), so the app needs ``blobs/read`` on the backup account and
  ``blobs/write`` (or ``add/action``) on the copy account, and no SAS or key exists anywhere. The request
  carries the source's ETag (``x-ms-source-if-match``: the source did not change under the copy), its
  Content-MD5 when it has one (``x-ms-source-content-md5``: Azure compares it with the bytes it read and
  fails with 400 ``Md5Mismatch`` otherwise) and ``If-None-Match: *`` (an existing copy is never
  overwritten: 409 ``BlobAlreadyExists``). The answer carries the Content-MD5 the service computed over the
  bytes it wrote.
- **Put Block From URL** + **Put Block List** (``stage_block_from_url``, ``commit_block_list``) above that:
  the same source authorization per block (each at most 4000 MiB; 256 MiB here), committed with the
  source's Content-MD5 as the blob's property. Azure computes no whole-blob MD5 for a block list, so such a
  copy is verified by size.
- Not used: **Copy Blob** (asynchronous, ``start_copy_from_url``) accepts no bearer source authorization
  across accounts (the SDK passes ``source_authorization`` only with ``requires_sync=True``, i.e. Copy Blob
  From URL), so its source would need a SAS (a user delegation key and a signed URL), and its status has to
  be polled (``x-ms-copy-status`` pending/success/failed/aborted on Get Blob Properties); **Copy Blob From
  URL** (``requires_sync=True``) is limited to 256 MiB.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from dr_core.ports import BlobChecksum, BlobCopy, CopyOutcome

from .errors import Service, translates

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobServiceClient

__all__ = ["BLOCK_SIZE", "PUT_BLOB_FROM_URL_LIMIT", "BlobServerSideCopier"]

logger = logging.getLogger(__name__)

PUT_BLOB_FROM_URL_LIMIT = 5000 * 1024 * 1024  # Put Blob From URL: "up to a maximum length of 5,000 MiB"
BLOCK_SIZE = 256 * 1024 * 1024  # Put Block From URL allows 4000 MiB; smaller blocks finish within time-outs
STORAGE_SCOPE = "https://storage.azure.com/.default"
# An existing destination: 409 BlobAlreadyExists from If-None-Match: * (412 ConditionNotMet from some services).
_EXISTS_CODES = frozenset({"BlobAlreadyExists", "ConditionNotMet"})


@translates(Service.STORAGE)
class BlobServerSideCopier:
    """:class:`~dr_core.ports.BlobCopier` between two accounts, authorized with the app's identity."""

    def __init__(self, source: BlobServiceClient, target: BlobServiceClient, credential: TokenCredential, *,
                 source_account: str, target_account: str, single_request_limit: int = PUT_BLOB_FROM_URL_LIMIT,
                 block_size: int = BLOCK_SIZE) -> None:
        self._source = source
        self._target = target
        self._credential = credential
        self._single_limit = single_request_limit
        self._block_size = block_size
        self.what = f"the copy from {source_account} to {target_account}"

    def copy(self, container: str, blob_name: str) -> BlobCopy:
        source = self._source.get_blob_client(container, blob_name)
        try:
            props = source.get_blob_properties()
        except ResourceNotFoundError:
            return BlobCopy(blob_name, CopyOutcome.SOURCE_MISSING, None, None)
        before = BlobChecksum(int(props.size or 0), _md5_text(props.content_settings.content_md5), props.etag)
        target = self._target.get_blob_client(container, blob_name)
        # The app's own token, for the copy account to read the source with; never logged or stored.
        authorization = f"Bearer {self._credential.get_token(STORAGE_SCOPE).token}"
        method = "put-blob-from-url" if before.size <= self._single_limit else "put-block-from-url"
        service_md5: str | None = None
        try:
            if method == "put-blob-from-url":
                answer = target.upload_blob_from_url(
                    source.url, overwrite=False, source_authorization=authorization, source_etag=props.etag,
                    source_match_condition=MatchConditions.IfNotModified,
                    source_content_md5=_md5_bytes(before.content_md5), include_source_blob_properties=True)
                service_md5 = _md5_text(answer.get("content_md5"))
            else:
                self._copy_in_blocks(target, source.url, before, authorization, props)
            outcome = CopyOutcome.COPIED
        except ResourceExistsError:
            outcome = CopyOutcome.PRESENT
        except HttpResponseError as e:
            if getattr(e, "error_code", None) not in _EXISTS_CODES:
                raise
            outcome = CopyOutcome.PRESENT
        return BlobCopy(blob_name, outcome, before, self._checksum(container, blob_name), method, service_md5)

    def _copy_in_blocks(self, target: Any, url: str, before: BlobChecksum, authorization: str, props: Any) -> None:
        from azure.storage.blob import BlobBlock, ContentSettings

        if target.exists():
            raise ResourceExistsError("the copy exists")  # never overwritten (Put Block List would replace it)
        ids: list[str] = []
        for index, offset in enumerate(range(0, before.size, self._block_size)):
            block_id = base64.b64encode(f"{index:08d}".encode()).decode()
            target.stage_block_from_url(block_id, url, source_offset=offset,
                                        source_length=min(self._block_size, before.size - offset),
                                        source_authorization=authorization, source_etag=props.etag,
                                        source_match_condition=MatchConditions.IfNotModified)
            ids.append(block_id)
        settings = props.content_settings
        target.commit_block_list(
            [BlobBlock(block_id=i) for i in ids], etag="*", match_condition=MatchConditions.IfMissing,
            content_settings=ContentSettings(content_type=settings.content_type,
                                             content_encoding=settings.content_encoding,
                                             content_md5=_md5_bytes(before.content_md5)))

    def _checksum(self, container: str, blob_name: str) -> BlobChecksum | None:
        try:
            props = self._target.get_blob_client(container, blob_name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return BlobChecksum(int(props.size or 0), _md5_text(props.content_settings.content_md5), props.etag)


def _md5_text(value: Any) -> str | None:
    """Content-MD5 as base64 text (the SDK gives bytes or bytearray)."""
    if not value:
        return None
    return base64.b64encode(bytes(value)).decode()


def _md5_bytes(value: str | None) -> bytearray | None:
    return bytearray(base64.b64decode(value)) if value else None
