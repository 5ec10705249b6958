"""The front's admin API under ``/_front/`` (JSON in, JSON out). Not part of Azure.

- ``GET /_front/health``, ``GET /_front/state``, ``POST /_front/reset`` (forget everything)
- ``GET|PUT /_front/clock {"offsetSeconds"}``, ``POST /_front/clock/advance {"seconds"}``: the retention clock
- ``PUT|DELETE /_front/accounts/{account}/policy {"retentionDays", "locked"?}``: account default policy
- ``PUT|DELETE /_front/containers/{account}/{container}/policy``
  ``{"retentionDays", "locked"?, "allowProtectedAppendWrites"?}``: container-level time-based retention
- ``PUT|DELETE /_front/containers/{account}/{container}/legal-hold {"tags": [...]}``: container legal hold
- ``PUT|DELETE /_front/blobs/{account}/{container}/policy?blob=NAME {"until", "mode"?}``: blob-level policy
- ``PUT|DELETE /_front/blobs/{account}/{container}/legal-hold?blob=NAME {"legalHold"}``: blob legal hold
- ``GET|PUT|DELETE /_front/roles`` (``null`` or DELETE: no RBAC), ``GET /_front/roles/builtin``
- ``GET|DELETE /_front/requests?method=&pathContains=&decision=&operation=``: the request log

Bad input answers 4xx with ``{"error": {"code", "message"}}``; nothing a client sends answers 5xx.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from email.message import Message
from http import HTTPStatus
from io import BufferedIOBase
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from .errors import UpstreamError
from .rbac import ACCOUNT_RE, CONTAINER_RE, RoleTableError, builtin_roles
from .state import AccountPolicy, ContainerPolicy, FrontState, iso


class AdminExchange(Protocol):
    """The HTTP exchange an admin request arrives on (the front's request handler)."""

    command: str
    headers: Message
    rfile: BufferedIOBase
    wfile: BufferedIOBase
    close_connection: bool

    def drain(self) -> None:
        """Read and drop the request body (or mark the connection to be closed)."""

    def write_head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        """Send the status line and headers."""


class AdminTarget(Protocol):
    """What the admin API reads and changes: the front's state, its accounts, Azurite's containers."""

    state: FrontState
    accounts: dict[str, str]

    def exists(self, account: str, container: str, blob: str | None = None) -> bool | None:
        """Whether the container (or blob) exists in Azurite; None when the account is unknown."""


BODY_LIMIT = 256 * 1024
MAX_RETENTION_DAYS = 146_000  # Azure: 1 day to 146,000 days (400 years)
MAX_OFFSET_SECONDS = 200 * 365 * 86400.0
TAG_RE = re.compile(r"^[A-Za-z0-9]{3,23}$")  # Azure: 3 to 23 alphanumeric characters, at most 10 tags
MAX_TAGS = 10


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def serve(handler: AdminExchange, front: AdminTarget, raw_path: str, raw_query: str) -> None:
    status: int
    payload: Any
    try:
        body = _read_body(handler)
        status, payload = route(front, handler.command, raw_path, raw_query, body)
    except AdminError as exc:
        status, payload = exc.status, {"error": {"code": exc.code, "message": exc.message}}
    except UpstreamError as exc:
        status, payload = 502, {"error": {"code": "AzuriteUnavailable", "message": str(exc)[:300]}}
    except Exception as exc:  # a bug here must not look like Azure's answer, nor kill the connection thread
        status, payload = 500, {"error": {"code": "FrontInternalError", "message": type(exc).__name__}}
    data = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(data)))]
    if handler.close_connection:
        headers.append(("Connection", "close"))
    handler.write_head(status, HTTPStatus(status).phrase, headers)
    if handler.command != "HEAD":
        handler.wfile.write(data)


def _read_body(handler: AdminExchange) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        handler.drain()  # read and dropped, so the client gets the answer
        raise AdminError(411, "LengthRequired", "send the admin request body with a Content-Length")
    text = handler.headers.get("Content-Length") or "0"
    try:
        length = int(text)
    except ValueError:
        handler.close_connection = True
        raise AdminError(400, "InvalidContentLength", "Content-Length is not a number") from None
    if length < 0:
        handler.close_connection = True
        raise AdminError(400, "InvalidContentLength", "Content-Length is negative")
    if length > BODY_LIMIT:
        handler.drain()  # read and dropped (or, when huge, the connection is closed)
        raise AdminError(413, "BodyTooLarge", f"admin request bodies are limited to {BODY_LIMIT} bytes")
    return handler.rfile.read(length) if length else b""


def _json(body: bytes) -> Any:
    if not body:
        raise AdminError(400, "MissingBody", "this request needs a JSON body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise AdminError(400, "InvalidJson", "the body is not valid JSON") from None


def _object(body: bytes, allowed: set[str]) -> dict[str, Any]:
    value = _json(body)
    if not isinstance(value, dict):
        raise AdminError(400, "InvalidBody", "the body must be a JSON object")
    unknown = set(value) - allowed
    if unknown:
        raise AdminError(400, "InvalidBody", f"unknown fields: {sorted(str(u)[:40] for u in unknown)[:5]}")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise AdminError(400, "InvalidValue", f"{name} must be true or false")
    return value


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_DAYS:
        raise AdminError(400, "InvalidRetention",
                         f"retentionDays must be a whole number of days from 1 to {MAX_RETENTION_DAYS}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or abs(value) > MAX_OFFSET_SECONDS:
        raise AdminError(400, "InvalidValue", f"{name} must be a finite number of seconds within 200 years")
    return float(value)


def _names(account: str, container: str | None = None) -> tuple[str, str | None]:
    if not ACCOUNT_RE.match(account):
        raise AdminError(400, "InvalidAccountName", "not a storage account name (3-24 lowercase letters or digits)")
    if container is not None and not CONTAINER_RE.match(container):
        raise AdminError(400, "InvalidContainerName", "not a container name")
    return account, container


def _must_exist(front: AdminTarget, account: str, container: str, blob: str | None = None) -> None:
    found = front.exists(account, container, blob)
    if found is None:
        raise AdminError(404, "AccountNotFound", f"the front has no key for account {account!r}")
    if not found:
        what = "blob" if blob is not None else "container"
        raise AdminError(404, f"{what.capitalize()}NotFound", f"the {what} does not exist in Azurite")


def _blob_name(query: dict[str, list[str]]) -> str:
    names = query.get("blob") or []
    if len(names) != 1 or not names[0] or len(names[0]) > 1024 or any(ord(ch) < 32 for ch in names[0]):
        raise AdminError(400, "InvalidBlobName", "give exactly one ?blob=NAME (1-1024 characters)")
    return names[0]


def _until(value: Any) -> float:
    if not isinstance(value, str) or len(value) > 64:
        raise AdminError(400, "InvalidUntil", "until must be an ISO 8601 date-time with a time zone")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AdminError(400, "InvalidUntil", "until must be an ISO 8601 date-time with a time zone") from None
    if moment.tzinfo is None:
        raise AdminError(400, "InvalidUntil", "until needs a time zone (e.g. Z)")
    return moment.timestamp()


def route(front: AdminTarget, method: str, raw_path: str, raw_query: str, body: bytes) -> tuple[int, Any]:
    state = front.state
    parts = [unquote(p) for p in raw_path.split("/")[2:] if p != ""]
    query = parse_qs(raw_query, keep_blank_values=True)

    def allow(*methods: str) -> None:
        if method not in methods:
            raise AdminError(405, "MethodNotAllowed", f"{method} is not allowed here; use {', '.join(methods)}")

    match parts:
        case ["health"]:
            allow("GET")
            return 200, {"status": "ok"}
        case ["state"]:
            allow("GET")
            return 200, state.snapshot()
        case ["reset"]:
            allow("POST")
            state.reset()
            return 200, state.snapshot()
        case ["clock"]:
            allow("GET", "PUT")
            if method == "PUT":
                offset = _number(_object(body, {"offsetSeconds"}).get("offsetSeconds"), "offsetSeconds")
                state.set_offset(offset)
            return 200, {"offsetSeconds": state.clock_offset, "now": iso(state.now())}
        case ["clock", "advance"]:
            allow("POST")
            seconds = _number(_object(body, {"seconds"}).get("seconds"), "seconds")
            with state.lock:
                state.set_offset(_number(state.clock_offset + seconds, "offsetSeconds"))
            return 200, {"offsetSeconds": state.clock_offset, "now": iso(state.now())}
        case ["accounts", account, "policy"]:
            allow("PUT", "DELETE")
            _names(account)
            if method == "DELETE":
                with state.lock:
                    state.accounts.pop(account, None)
                return 200, state.snapshot()
            if account not in front.accounts:
                raise AdminError(404, "AccountNotFound", f"the front has no key for account {account!r}")
            spec = _object(body, {"retentionDays", "locked"})
            account_policy = AccountPolicy(_days(spec.get("retentionDays")),
                                           _bool(spec.get("locked", False), "locked"))
            with state.lock:
                state.accounts[account] = account_policy
            return 200, state.snapshot()
        case ["accounts", account, "outage"]:
            # The account's endpoint stops answering (requests are closed without a response), and copies that
            # read from it fail with 500 CannotVerifyCopySource, as in a regional storage outage.
            allow("PUT", "DELETE")
            _names(account)
            if method == "PUT":
                if account not in front.accounts:
                    raise AdminError(404, "AccountNotFound", f"the front has no key for account {account!r}")
                with state.lock:
                    state.outages.add(account)
            else:
                with state.lock:
                    state.outages.discard(account)
            return 200, state.snapshot()
        case ["containers", account, container, "policy"]:
            allow("PUT", "DELETE")
            _names(account, container)
            if method == "DELETE":
                state.update_container(account, container, policy=None)
                return 200, state.snapshot()
            spec = _object(body, {"retentionDays", "locked", "allowProtectedAppendWrites"})
            policy = ContainerPolicy(_days(spec.get("retentionDays")), _bool(spec.get("locked", False), "locked"),
                                     _bool(spec.get("allowProtectedAppendWrites", False),
                                           "allowProtectedAppendWrites"))
            _must_exist(front, account, container)
            state.update_container(account, container, policy=policy)
            return 200, state.snapshot()
        case ["containers", account, container, "legal-hold"]:
            allow("PUT", "DELETE")
            _names(account, container)
            if method == "DELETE":
                state.update_container(account, container, legal_hold_tags=[])
                return 200, state.snapshot()
            tags = _object(body, {"tags"}).get("tags")
            if not isinstance(tags, list) or not 1 <= len(tags) <= MAX_TAGS or not all(
                    isinstance(t, str) and TAG_RE.match(t) for t in tags):
                raise AdminError(400, "InvalidLegalHoldTags",
                                 f"tags must be 1 to {MAX_TAGS} strings of 3 to 23 letters or digits")
            _must_exist(front, account, container)
            state.update_container(account, container, legal_hold_tags=sorted(set(tags)))
            return 200, state.snapshot()
        case ["blobs", account, container, "policy"]:
            allow("PUT", "DELETE")
            _names(account, container)
            blob = _blob_name(query)
            if method == "DELETE":
                state.update_blob(account, container, blob, until=None)
                return 200, state.snapshot()
            spec = _object(body, {"until", "mode"})
            until = _until(spec.get("until"))
            mode = spec.get("mode", "Unlocked")
            if not isinstance(mode, str) or mode.lower() not in ("unlocked", "locked"):
                raise AdminError(400, "InvalidMode", "mode must be Unlocked or Locked")
            _must_exist(front, account, container, blob)
            state.update_blob(account, container, blob, until=until, mode=mode.capitalize())
            return 200, state.snapshot()
        case ["blobs", account, container, "legal-hold"]:
            allow("PUT", "DELETE")
            _names(account, container)
            blob = _blob_name(query)
            if method == "DELETE":
                state.update_blob(account, container, blob, legal_hold=False)
                return 200, state.snapshot()
            hold = _bool(_object(body, {"legalHold"}).get("legalHold"), "legalHold")
            if hold:
                _must_exist(front, account, container, blob)
            state.update_blob(account, container, blob, legal_hold=hold)
            return 200, state.snapshot()
        case ["roles"]:
            allow("GET", "PUT", "DELETE")
            if method == "PUT":
                try:
                    state.set_roles(_json(body))
                except RoleTableError as exc:
                    raise AdminError(400, "InvalidRoleTable", str(exc)) from None
            elif method == "DELETE":
                state.set_roles(None)
            return 200, {"roles": state.roles_source}
        case ["roles", "builtin"]:
            allow("GET")
            return 200, {"roles": [{"id": r.id, "roleName": r.name, "actions": list(r.actions),
                                    "dataActions": list(r.data_actions)} for r in builtin_roles()]}
        case ["requests"]:
            allow("GET", "DELETE")
            if method == "DELETE":
                with state.lock:
                    state.log.clear()
                return 200, {"requests": []}

            def one(name: str) -> str | None:
                values = query.get(name)
                return values[0] if values else None

            return 200, {"requests": state.requests(method=one("method"), path_contains=one("pathContains"),
                                                    decision=one("decision"), operation=one("operation"))}
    raise AdminError(404, "NotFound", "no such admin resource under /_front/")
