"""Shared Key signatures for the front's own requests to Azurite (a HEAD to learn a blob's creation time).

String-to-sign as documented for version 2015-02-21 and later:
https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate
from urllib.parse import parse_qsl

from .errors import DEFAULT_VERSION

_STANDARD = ("content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
             "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")


def signed_headers(method: str, path: str, query: str, *, account: str, key: str,
                   headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus ``x-ms-date``, ``x-ms-version`` and the SharedKey ``Authorization``.

    ``path`` is the percent-encoded path as sent, account included (path-style URLs).
    """
    out = {k.lower(): v for k, v in (headers or {}).items()}
    out.setdefault("x-ms-date", formatdate(usegmt=True))
    out.setdefault("x-ms-version", DEFAULT_VERSION)
    lines = [method.upper()]
    for name in _STANDARD:
        value = out.get(name, "")
        lines.append("" if name == "content-length" and value == "0" else value)
    canonical_headers = "".join(f"{k}:{out[k].strip()}\n" for k in sorted(out) if k.startswith("x-ms-"))
    resource = f"/{account}{path}"
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name.lower(), []).append(value)
    for name in sorted(params):
        resource += f"\n{name}:{','.join(sorted(params[name]))}"
    string_to_sign = "\n".join(lines) + "\n" + canonical_headers + resource
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    out["authorization"] = f"SharedKey {account}:{base64.b64encode(digest).decode()}"
    return out
