"""Put Blob From URL and Put Block From URL, which Azurite 3.35 does not implement ("NotImplemented"), done by
the front as Azure Storage does them: the destination service reads the source itself, so no data passes
through the client.

What Azure documents and the front applies (https://learn.microsoft.com/rest/api/storageservices/
put-blob-from-url and put-block-from-url; the headers as the Blob REST spec, Azure/azure-rest-api-specs
``specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json``, ``BlockBlob_PutBlobFromUrl``
and ``BlockBlob_StageBlockFromURL``, name them):

- ``x-ms-copy-source``: the source URL. It is read **as the source authorization says**: with
  ``x-ms-copy-source-authorization: Bearer <token>`` (version 2020-10-02 and later; "only the bearer scheme is
  supported for Microsoft Entra ID") as that token's principal, which needs ``…/blobs/read`` on the source;
  with a SAS in the URL as the SAS; otherwise anonymously (a private container answers 404). A refusal is
  ``CannotVerifyCopySource`` with the source's status (403 "not authorized", 404 "does not exist"); a source
  that cannot be reached is 500 ``CannotVerifyCopySource`` "Could not verify the copy source within the
  specified time." (the Blob service error codes page).
- ``x-ms-source-if-match`` / ``-if-none-match`` / ``-if-modified-since`` / ``-if-unmodified-since``: checked on
  the source; 412 ``SourceConditionNotMet``.
- ``x-ms-source-content-md5``: the MD5 of the bytes read from the source must match; else 400 ``Md5Mismatch``.
- Put Blob From URL: the whole source, at most 5000 MiB; the source's standard properties (Content-Type,
  -Encoding, -Language, -Disposition, Cache-Control) are copied unless ``x-ms-copy-source-blob-properties:
  false`` or the request sets them (``x-ms-blob-content-*``); application metadata is not copied; tags only
  from ``x-ms-tags``. The answer is 201 with ``Content-MD5`` computed by the service over the bytes written.
- Put Block From URL: ``x-ms-source-range`` (``bytes=start-end``) of the source, at most 4000 MiB, staged as
  an uncommitted block of the destination (then Put Block List).

The destination side (RBAC for the caller's own token, immutability, conditional headers such as
``If-None-Match: *``) is the ordinary Put Blob / Put Block, which Azurite answers after the front's checks.
Choices where Azure is silent: a source above 5000 MiB is refused with 409 ``CannotVerifyCopySource``; a source
URL that is not behind this front (another host) is refused with 404 ``CannotVerifyCopySource``; the emulator
holds one copy in memory (its sizes are small) and sends no ``x-ms-content-crc64``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import urllib3

from .errors import StorageError, UpstreamError
from .ops import BLOB_READ, Operation, split_path
from .rbac import granted

if TYPE_CHECKING:
    from .front import BlobFront

__all__ = ["MAX_BLOCK_FROM_URL", "MAX_PUT_BLOB_FROM_URL", "CopyAnswer", "CopyRefused", "perform"]

MAX_PUT_BLOB_FROM_URL = 5000 * 1024 * 1024
MAX_BLOCK_FROM_URL = 4000 * 1024 * 1024
_COPIED_PROPERTIES = {  # source response header -> destination Put Blob header (standard blob properties)
    "content-type": "x-ms-blob-content-type",
    "content-encoding": "x-ms-blob-content-encoding",
    "content-language": "x-ms-blob-content-language",
    "content-disposition": "x-ms-blob-content-disposition",
    "cache-control": "x-ms-blob-cache-control",
}
# Request headers that go on to the destination write unchanged (conditions, tags, metadata, tier, lease).
_PASSED_ON = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "x-ms-tags",
              "x-ms-access-tier", "x-ms-lease-id", "x-ms-blob-content-type", "x-ms-blob-content-encoding",
              "x-ms-blob-content-language", "x-ms-blob-content-disposition", "x-ms-blob-cache-control",
              "x-ms-version", "x-ms-client-request-id")
_VERIFY_FAILED = "Could not verify the copy source within the specified time."


@dataclass(frozen=True)
class CopyAnswer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class CopyRefused(Exception):
    """Azure's refusal of the copy (``err``): the front answers it as it is."""

    def __init__(self, err: StorageError) -> None:
        super().__init__(err.code)
        self.err = err


def _refuse(status: int, code: str, message: str) -> CopyRefused:
    return CopyRefused(StorageError(status, code, message))


def perform(front: BlobFront, op: Operation, headers: dict[str, str], raw_path: str, raw_query: str) -> CopyAnswer:
    """Do the request ``op`` (PutBlobFromURL or PutBlockFromURL) after the destination's checks passed.

    :raises CopyRefused: Azure's refusal. :raises UpstreamError: Azurite could not be reached.
    """
    assert op.account is not None and op.container is not None and op.blob is not None
    source = _Source.parse(front, headers.get("x-ms-copy-source") or "")
    data, source_headers = source.read(front, headers, block=op.name == "PutBlockFromURL")
    _check_conditions(headers, source_headers)
    expected_md5 = headers.get("x-ms-source-content-md5")
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    if expected_md5 is not None and expected_md5.strip() != md5:
        raise _refuse(400, "Md5Mismatch",
                      "The MD5 value specified in the request did not match with the MD5 value calculated by the "
                      "server.")
    out: dict[str, str] = {k: v for k, v in headers.items() if k in _PASSED_ON or k.startswith("x-ms-meta-")}
    out["content-length"] = str(len(data))
    out["content-md5"] = md5
    if op.name == "PutBlobFromURL":
        out["x-ms-blob-type"] = "BlockBlob"
        if (headers.get("x-ms-copy-source-blob-properties") or "true").lower() != "false":
            for src, dst in _COPIED_PROPERTIES.items():
                if src in source_headers and dst not in out:
                    out[dst] = source_headers[src]
    signed = front.signed(op.account, "PUT", raw_path, raw_query, out)
    if signed is None:
        raise _refuse(404, "CannotVerifyCopySource", f"The front holds no key for account {op.account}.")
    target = f"{raw_path}?{raw_query}" if raw_query else raw_path
    try:
        resp = front.pool.urlopen("PUT", target, body=data, headers=signed, retries=False, redirect=False,
                                  preload_content=True, assert_same_host=False)
    except urllib3.exceptions.HTTPError as exc:
        raise UpstreamError(str(exc)) from exc
    kept = [(k, v) for k, v in resp.headers.items() if k.lower() not in ("connection", "keep-alive",
                                                                         "transfer-encoding", "content-length")]
    return CopyAnswer(resp.status, resp.reason or "", kept, resp.data)


@dataclass(frozen=True)
class _Source:
    account: str
    container: str
    blob: str
    path: str  # as percent-encoded in the URL
    query: str

    @classmethod
    def parse(cls, front: BlobFront, url: str) -> _Source:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2048:
            raise _refuse(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct "
                          "format. (x-ms-copy-source)")
        if parts.port != front.port or (parts.hostname or "") not in ("127.0.0.1", "localhost"):
            raise _refuse(404, "CannotVerifyCopySource", "The specified resource does not exist. (the emulator only "
                          "copies from accounts behind this blob front)")
        account, container, blob = split_path(parts.path)
        if account is None or container is None or blob is None:
            raise _refuse(404, "CannotVerifyCopySource", "The specified resource does not exist.")
        return cls(account, container, blob, parts.path, parts.query)

    def read(self, front: BlobFront, headers: dict[str, str], *, block: bool) -> tuple[bytes, dict[str, str]]:
        """The source's bytes (the range for a block) and its response headers, read as the source
        authorization allows."""
        if front.state.is_down(self.account):
            raise _refuse(500, "CannotVerifyCopySource", _VERIFY_FAILED)
        request: dict[str, str] = {"x-ms-version": headers.get("x-ms-version") or "2021-08-06"}
        authorization = (headers.get("x-ms-copy-source-authorization") or "").strip()
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _refuse(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the "
                              "correct format. (x-ms-copy-source-authorization: only the bearer scheme is "
                              "supported)")
            from .front import bearer_oid

            roles = front.state.roles
            principal = bearer_oid({"authorization": f"Bearer {token.strip()}"})
            if roles is not None and not granted(roles, principal, BLOB_READ, data=True, account=self.account,
                                                 container=self.container):
                raise _refuse(403, "CannotVerifyCopySource",
                              "This request is not authorized to perform this operation using this permission.")
            request["authorization"] = f"Bearer {token.strip()}"
        if block:
            length = _range_length(headers.get("x-ms-source-range"))
            if length is not None and length > MAX_BLOCK_FROM_URL:
                raise _refuse(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the "
                              "correct format. (x-ms-source-range is larger than 4000 MiB)")
            if headers.get("x-ms-source-range"):
                request["x-ms-range"] = str(headers["x-ms-source-range"])
        target = f"{self.path}?{self.query}" if self.query else self.path
        try:
            resp = front.pool.urlopen("GET", target, headers=request, retries=False, redirect=False,
                                      preload_content=False, assert_same_host=False)
        except urllib3.exceptions.HTTPError as exc:
            raise _refuse(500, "CannotVerifyCopySource", _VERIFY_FAILED) from exc
        try:
            found = {k.lower(): v for k, v in resp.headers.items()}
            anonymous = "authorization" not in request and "sig=" not in self.query.lower()
            if resp.status == 404 or (anonymous and resp.status in (401, 403)):
                # Azure answers an anonymous read of a private container as "not found" (Azurite: 403).
                raise _refuse(404, "CannotVerifyCopySource", "The specified resource does not exist.")
            if resp.status not in (200, 206):
                raise _refuse(resp.status, "CannotVerifyCopySource",
                              found.get("x-ms-error-code") or "The copy source could not be read.")
            length = int(found.get("content-length") or 0)
            if not block and length > MAX_PUT_BLOB_FROM_URL:
                raise _refuse(409, "CannotVerifyCopySource", "The source blob is larger than 5000 MiB, the most Put "
                              "Blob From URL copies; use Put Block From URL and Put Block List.")
            return resp.read(), found
        finally:
            resp.release_conn()


def _range_length(value: str | None) -> int | None:
    if not value:
        return None
    text = value.strip().lower().removeprefix("bytes=")
    start, _, end = text.partition("-")
    try:
        return int(end) - int(start) + 1
    except ValueError:
        raise _refuse(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct "
                      "format. (x-ms-source-range)") from None


def _check_conditions(headers: dict[str, str], source: dict[str, str]) -> None:
    """x-ms-source-if-* against the source as read: 412 SourceConditionNotMet when one fails."""
    from email.utils import parsedate_to_datetime

    etag = source.get("etag", "")
    failed = False
    wanted = headers.get("x-ms-source-if-match")
    if wanted is not None and wanted.strip() not in ("*", etag):
        failed = True
    unwanted = headers.get("x-ms-source-if-none-match")
    if unwanted is not None and unwanted.strip() in ("*", etag):
        failed = True
    modified_text = source.get("last-modified")
    for name, newer_wanted in (("x-ms-source-if-modified-since", True), ("x-ms-source-if-unmodified-since", False)):
        given = headers.get(name)
        if given is None or modified_text is None:
            continue
        try:
            modified, since = parsedate_to_datetime(modified_text), parsedate_to_datetime(given)
        except (TypeError, ValueError):
            continue
        if (modified > since) != newer_wanted:
            failed = True
    if failed:
        raise _refuse(412, "SourceConditionNotMet",
                      "The source condition specified using HTTP conditional header(s) is not met.")
