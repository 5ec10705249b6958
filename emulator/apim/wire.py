"""Transport-neutral request/response records shared by the ARM, admin and identity handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    path: str  # raw (percent-encoded) path without the query
    raw_query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    base_url: str  # scheme://host[:port] the client used, for absolute Location/nextLink URLs

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        """A query parameter, matched case-insensitively (ARM treats ``API-Version`` the same)."""
        for key, values in self.query.items():
            if key.lower() == name.lower():
                return values[0]
        return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    principal: str | None = None  # for the request log
    # Close the connection after answering (e.g. a request body was not read).
    close: bool = False
    # Close the connection without answering at all (a lost answer, see ``substitute``).
    abort: bool = False
    # A lost answer: the request was handled (this response is what the request log records) but the
    # client gets ``substitute`` instead (faults.lost_answer).
    substitute: Response | None = None


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload).encode()
    merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    return Response(status, body, merged)
