"""Azure Storage error answers: status, ``x-ms-error-code`` header and the XML body Azure sends.

Azure puts the message in the reason phrase too, and ends the XML message with the request id and
time: ``<Error><Code>…</Code><Message>…\\nRequestId:…\\nTime:2024-01-01T00:00:00.0000000Z</Message></Error>``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from xml.sax.saxutils import escape

AZURE_SERVER = "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0"
DEFAULT_VERSION = "2021-08-06"

AUTHORIZATION_PERMISSION_MISMATCH = (
    "AuthorizationPermissionMismatch",
    "This request is not authorized to perform this operation using this permission.",
)
UNAUTHORIZED_BLOB_OVERWRITE = (
    "UnauthorizedBlobOverwrite",
    "This request is not authorized to perform blob overwrites.",
)


class UpstreamError(Exception):
    """Azurite could not be reached or broke the connection."""


@dataclass
class StorageError:
    status: int
    code: str
    message: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def body(self) -> bytes:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 10:07d}Z"
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}\n"
            f"RequestId:{self.request_id}\nTime:{stamp}</Message></Error>"
        ).encode()

    def headers(self, *, version: str | None, client_request_id: str | None, length: int) -> list[tuple[str, str]]:
        headers = [
            ("Content-Length", str(length)),
            ("Content-Type", "application/xml"),
            ("Server", AZURE_SERVER),
            ("x-ms-request-id", self.request_id),
            ("x-ms-version", version or DEFAULT_VERSION),
            ("x-ms-error-code", self.code),
            ("Date", formatdate(usegmt=True)),
        ]
        if client_request_id and len(client_request_id) <= 1024 and client_request_id.isprintable():
            headers.append(("x-ms-client-request-id", client_request_id))
        return headers


def error(pair: tuple[str, str], status: int) -> StorageError:
    return StorageError(status, pair[0], pair[1])
