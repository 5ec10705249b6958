"""The blob front: an HTTPS reverse proxy before Azurite's blob endpoint that adds Azure's immutability
and data-plane RBAC rules.

Every request is forwarded unchanged (method, percent-encoded path, query, headers including ``Host``,
body) over a keep-alive pool, and Azurite's answer comes back unchanged (status, reason, headers,
streamed body), except where a rule refuses (Azure's 403/409 error, the request never reaches
Azurite) or where Azure reports immutability that Azurite does not know (a few response headers and
List Blobs properties). Shared Key signatures stay valid: they cover the path, query and ``x-ms-*``
headers, which are passed through byte for byte.

Order of checks, as Azure does: authentication (Azurite's, unchanged) → RBAC for bearer tokens →
immutability → the operation (Azurite).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
import urllib3
from urllib3.response import BaseHTTPResponse

from emulator.certs import TlsFiles
from emulator.tls_server import TlsHttpServer

from . import admin_api
from .errors import AUTHORIZATION_PERMISSION_MISMATCH, UNAUTHORIZED_BLOB_OVERWRITE, StorageError, UpstreamError, error
from .immutability import BlobFacts, container_delete_refusal, protection, refusal
from .ops import BLOB_ADD, BLOB_WRITE, Imm, Operation, classify, lower_query
from .rbac import granted
from .state import FrontState, iso

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/_front"
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "expect",
})
CHUNK = 256 * 1024
# A refused request's body is read and dropped (so the client reads the answer); beyond this the
# connection is closed instead.
DRAIN_LIMIT = 512 * 1024 * 1024
IMMUTABILITY_VERSION = "2020-06-12"  # first x-ms-version with the immutability headers


def auth_kind(headers: dict[str, str], raw_query: str) -> str:
    scheme = (headers.get("authorization") or "").strip().split(" ", 1)[0].lower()
    if scheme == "bearer":
        return "bearer"
    if scheme in ("sharedkey", "sharedkeylite"):
        return "sharedkey"
    if "sig" in lower_query(raw_query):
        return "sas"
    return scheme or "anonymous"


def bearer_oid(headers: dict[str, str]) -> str | None:
    """The caller's object id (``oid``) from the token; signatures are Azurite's business (--oauth basic)."""
    token = (headers.get("authorization") or "").strip()[len("bearer"):].strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    oid = claims.get("oid") if isinstance(claims, dict) else None
    return oid.lower() if isinstance(oid, str) and oid else None


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _facts(state: FrontState, key: tuple[str, str, str], created: str | None, modified: str | None,
           blob_type: str | None) -> BlobFacts:
    """A blob's facts from Azurite's headers, its times moved onto the front's clock."""
    c, m = _http_date(created), _http_date(modified)
    return BlobFacts(True, state.front_time(c, key=key, stamp=created) if c is not None else None,
                     state.front_time(m) if m is not None else None, blob_type)


def _rfc1123(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


class Refused(Exception):
    def __init__(self, err: StorageError, decision: str) -> None:
        super().__init__(err.code)
        self.err = err
        self.decision = decision


class Relay(Exception):
    """Answer with Azurite's own response to a probe (authentication failed before authorization)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status)
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


class BlobFront:
    """In-process front: ``BlobFront(upstream, tls, accounts=...).start()``; ``.stop()``.

    ``upstream`` is Azurite's blob endpoint without an account (``https://127.0.0.1:10000``);
    ``accounts`` maps account names to keys (the front signs its own lookups, e.g. a blob's creation time).
    """

    def __init__(self, upstream: str, tls: TlsFiles, *, accounts: dict[str, str], port: int = 0,
                 roles: dict[str, Any] | None = None, pool_size: int = 32) -> None:
        self.upstream = upstream.rstrip("/")
        self.tls = tls
        self.accounts = dict(accounts)
        self.state = FrontState()
        if roles is not None:
            self.state.set_roles(roles)
        self._port = port
        self._server: _FrontServer | None = None
        self._thread: threading.Thread | None = None
        self.pool = urllib3.connection_from_url(
            self.upstream,
            maxsize=pool_size,
            block=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(tls.ca_bundle),
            timeout=urllib3.Timeout(connect=5.0, read=300.0),
            retries=False,
        )

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> BlobFront:
        self._server = _FrontServer(self._port, self)
        self._port = self._server.port
        self._thread = threading.Thread(target=self._server.serve_forever, name="blobfront", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.pool.close()

    def __enter__(self) -> BlobFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    def endpoint(self, account: str = "") -> str:
        """The blob endpoint of ``account`` through the front (path-style, like Azurite's)."""
        return f"{self.url}/{account}" if account else self.url

    def connection_string(self, account: str) -> str:
        return (f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={self.accounts[account]};"
                f"BlobEndpoint={self.endpoint(account)};")

    @property
    def admin(self) -> Any:
        from .admin import BlobFrontAdmin

        return BlobFrontAdmin(self.url, self.tls.ca_bundle)

    # -- looking things up in Azurite -------------------------------------------------------------
    def _signed(self, method: str, path: str, query: str, account: str) -> dict[str, str] | None:
        from .sharedkey import signed_headers

        key = self.accounts.get(account)
        if key is None:
            return None
        return signed_headers(method, path, query, account=account, key=key)

    def signed(self, account: str, method: str, path: str, query: str,
               headers: dict[str, str]) -> dict[str, str] | None:
        """``headers`` signed with ``account``'s key (the front's own writes: Put Blob From URL); None if unknown."""
        from .sharedkey import signed_headers

        key = self.accounts.get(account)
        if key is None:
            return None
        return signed_headers(method, path, query, account=account, key=key, headers=headers)

    def blob_facts(self, raw_path: str, op: Operation) -> BlobFacts | None:
        """Existence and times of the blob at ``raw_path`` (as the client encoded it); None if unknown."""
        assert op.account is not None and op.container is not None and op.blob is not None
        headers = self._signed("HEAD", raw_path, "", op.account)
        if headers is None:
            return None
        try:
            resp = self.pool.urlopen("HEAD", raw_path, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(str(exc)) from exc
        if resp.status == 404:
            return BlobFacts(False)
        if resp.status != 200:
            return None
        return _facts(self.state, (op.account, op.container, op.blob), resp.headers.get("x-ms-creation-time"),
                      resp.headers.get("Last-Modified"), resp.headers.get("x-ms-blob-type"))

    def exists(self, account: str, container: str, blob: str | None = None) -> bool | None:
        """Whether a container (or blob) exists in Azurite; None when the account is unknown here."""
        from urllib.parse import quote

        path = f"/{quote(account)}/{quote(container)}"
        query = "restype=container"
        if blob is not None:
            path, query = f"{path}/{quote(blob, safe='/')}", ""
        headers = self._signed("HEAD", path, query, account)
        if headers is None:
            return None
        try:
            resp = self.pool.urlopen("HEAD", f"{path}?{query}" if query else path, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(str(exc)) from exc
        return resp.status == 200

    def _probe_authentication(self, account: str, headers: dict[str, str]) -> None:
        """Raise Relay with Azurite's answer if it does not accept the bearer token (401 before 403)."""
        probe = {"Authorization": headers.get("authorization", ""),
                 "x-ms-version": headers.get("x-ms-version") or "2021-08-06"}
        try:
            resp = self.pool.urlopen("GET", f"/{account}?restype=service&comp=properties", headers=probe,
                                     preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(str(exc)) from exc
        if resp.status in (401, 403):
            kept = [(k, v) for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}]
            raise Relay(resp.status, resp.reason or "", kept, resp.data)

    # -- the rules --------------------------------------------------------------------------------
    def check(self, op: Operation, auth: str, principal: str | None, headers: dict[str, str],
              raw_path: str) -> dict[str, Any]:
        """Raise Refused/Relay when a rule refuses; return what the decision looked at (for the log)."""
        seen: dict[str, Any] = {}
        facts: BlobFacts | None = None
        roles = self.state.roles
        if auth == "bearer" and roles is not None and op.mapped and op.account is not None:
            missing = [n for n in op.needs if not any(
                granted(roles, principal, a, data=n.data, account=n.account, container=n.container)
                for a in n.actions)]
            if missing:
                self._probe_authentication(op.account, headers)
                seen["missing"] = [" | ".join(n.actions) for n in missing]
                raise Refused(error(AUTHORIZATION_PERMISSION_MISMATCH, 403), "refused-rbac")
            if op.add_creates_only and op.container is not None and op.blob is not None and not granted(
                    roles, principal, BLOB_WRITE, data=True, account=op.account, container=op.container):
                # Only blobs/add/action: creating is allowed, overwriting is not.
                facts = self.blob_facts(raw_path, op)
                if facts is not None and facts.exists:
                    self._probe_authentication(op.account, headers)
                    raise Refused(error(UNAUTHORIZED_BLOB_OVERWRITE, 403), "refused-rbac")
                seen["grantedBy"] = BLOB_ADD
        if op.account is None or op.container is None:
            return seen
        if op.container_delete:
            found = container_delete_refusal(self.state, op.account, op.container)
            if found:
                raise Refused(error(found, 409), "refused-immutability")
        if op.imm is not Imm.NONE and op.blob is not None and self.state.may_protect(
                op.account, op.container, op.blob):
            facts = facts or self.blob_facts(raw_path, op)
            if facts is None:
                seen["immutability"] = "unchecked (account key unknown to the front)"
                return seen
            found = refusal(self.state, op.imm, op.account, op.container, op.blob, facts=facts)
            if found:
                raise Refused(error(found, 409), "refused-immutability")
        return seen

    def after(self, op: Operation, status: int, last_modified: str | None, offset: float) -> None:
        """Keep the front's state in step with what Azurite did."""
        if op.account is None or op.container is None:
            return
        if op.imm is Imm.CREATE and status in (201, 202) and op.blob is not None and last_modified:
            self.state.record_creation((op.account, op.container, op.blob), last_modified, offset)
        elif op.name == "DeleteBlob" and status == 202 and op.blob is not None:
            self.state.forget_blob(op.account, op.container, op.blob)
        elif op.container_delete and status == 202:
            self.state.forget_container(op.account, op.container)

    # -- reporting immutability where Azure does ---------------------------------------------------
    def blob_headers(self, op: Operation, response_headers: dict[str, str]) -> list[tuple[str, str]]:
        assert op.account and op.container and op.blob
        if not self.state.may_protect(op.account, op.container, op.blob):
            return []
        facts = _facts(self.state, (op.account, op.container, op.blob), response_headers.get("x-ms-creation-time"),
                       response_headers.get("last-modified"), response_headers.get("x-ms-blob-type"))
        p = protection(self.state, op.account, op.container, op.blob, facts)
        extra: list[tuple[str, str]] = []
        if p.version_until is not None:
            extra.append(("x-ms-immutability-policy-until-date", _rfc1123(p.version_until)))
            extra.append(("x-ms-immutability-policy-mode", (p.version_mode or "Unlocked").lower()))
        settings = self.state.blob(op.account, op.container, op.blob)
        if settings is not None:
            extra.append(("x-ms-legal-hold", "true" if settings.legal_hold else "false"))
        return extra

    def container_headers(self, op: Operation) -> dict[str, str]:
        assert op.account and op.container
        settings = self.state.container(op.account, op.container)
        out = {
            "x-ms-has-immutability-policy": "true" if settings and settings.policy else "false",
            "x-ms-has-legal-hold": "true" if settings and settings.legal_hold_tags else "false",
        }
        if self.state.account(op.account) is not None:
            out["x-ms-immutable-storage-with-versioning-enabled"] = "true"
        return out

    def rewrite_listing(self, op: Operation, body: bytes, include: set[str]) -> bytes:
        """Add ImmutabilityPolicyUntilDate/Mode and LegalHold to List Blobs results, as Azure does."""
        assert op.account and op.container
        root = ET.fromstring(body)
        for item in root.iter("Blob"):
            name = item.findtext("Name")
            props = item.find("Properties")
            if name is None or props is None:
                continue
            facts = _facts(self.state, (op.account, op.container, name), props.findtext("Creation-Time"),
                           props.findtext("Last-Modified"), props.findtext("BlobType"))
            p = protection(self.state, op.account, op.container, name, facts)
            if "immutabilitypolicy" in include and p.version_until is not None:
                ET.SubElement(props, "ImmutabilityPolicyUntilDate").text = _rfc1123(p.version_until)
                ET.SubElement(props, "ImmutabilityPolicyMode").text = (p.version_mode or "Unlocked").lower()
            settings = self.state.blob(op.account, op.container, name)
            if "legalhold" in include and settings is not None:
                ET.SubElement(props, "LegalHold").text = "true" if settings.legal_hold else "false"
        return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


class _FrontServer(TlsHttpServer):
    """The front's listener (always TLS): each connection served by a ``_Handler``."""

    def __init__(self, port: int, front: BlobFront) -> None:
        self.front = front
        super().__init__(port, _Handler, tls=front.tls, handshake_timeout=60)


class _Handler(BaseHTTPRequestHandler):
    server: _FrontServer
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_MERGE = do_GET

    # -- request bodies ---------------------------------------------------------------------------
    def _body_plan(self) -> tuple[str, int]:
        """("none" | "length" | "chunked" | "bad", length)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return "chunked", -1
        text = self.headers.get("Content-Length")
        if text is None:
            return "none", 0
        try:
            length = int(text)
        except ValueError:
            return "bad", 0
        return ("length", length) if length >= 0 else ("bad", 0)

    def _read_length(self, length: int) -> Iterator[bytes]:
        left = length
        while left > 0:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                raise ConnectionError("client closed the connection inside the request body")
            left -= len(data)
            yield data

    def _read_chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ConnectionError("malformed chunked request body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return
            yield from self._read_length(size)
            self.rfile.readline(8)

    def drain(self) -> None:
        """Read and drop the body of a request that is answered without forwarding."""
        kind, length = self._body_plan()
        try:
            if kind == "length" and length <= DRAIN_LIMIT:
                for _ in self._read_length(length):
                    pass
            elif kind == "chunked":
                total = 0
                for chunk in self._read_chunked():
                    total += len(chunk)
                    if total > DRAIN_LIMIT:
                        self.close_connection = True
                        return
            elif kind != "none" and length:
                self.close_connection = True
        except (ConnectionError, OSError):
            self.close_connection = True

    # -- answering --------------------------------------------------------------------------------
    def write_head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.send_response_only(status, reason.replace("\r", " ").replace("\n", " "))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _send_error(self, err: StorageError) -> int:
        self.drain()
        body = err.body()
        headers = err.headers(version=self.headers.get("x-ms-version"),
                              client_request_id=self.headers.get("x-ms-client-request-id"), length=len(body))
        if self.close_connection:
            headers.append(("Connection", "close"))
        self.write_head(err.status, err.message, headers)
        if self.command != "HEAD":
            self.wfile.write(body)
        return err.status

    def _send_relay(self, relay: Relay) -> int:
        self.drain()
        headers = [*relay.headers, ("Content-Length", str(len(relay.body)))]
        self.write_head(relay.status, relay.reason, headers)
        if self.command != "HEAD":
            self.wfile.write(relay.body)
        return relay.status

    # -- the request ------------------------------------------------------------------------------
    def _handle(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        if raw_path == ADMIN_PREFIX or raw_path.startswith(ADMIN_PREFIX + "/"):
            admin_api.serve(self, self.server.front, raw_path, raw_query)
            return
        front = self.server.front
        started = time.monotonic()
        headers = {k.lower(): v for k, v in self.headers.items()}
        op = classify(self.command, raw_path, raw_query, headers)
        auth = auth_kind(headers, raw_query)
        principal = bearer_oid(headers) if auth == "bearer" else None
        entry: dict[str, Any] = {
            "time": iso(time.time()), "method": self.command, "path": raw_path, "query": raw_query,
            "auth": auth, "principal": principal, "operation": op.name,
            "actions": op.actions if op.mapped else None, "decision": "forwarded", "status": None,
            "errorCode": None,
        }
        if op.account is not None and front.state.is_down(op.account):
            # The account's region is out (admin fault): no answer at all, as from an endpoint that does not
            # respond. The client sees the connection close (azure-core: ServiceResponseError).
            entry["decision"] = "refused-outage"
            entry["durationMs"] = round((time.monotonic() - started) * 1000, 1)
            front.state.record(entry)
            self.close_connection = True
            return
        guarded = (op.imm is not Imm.NONE and op.account is not None and op.container is not None
                   and op.blob is not None and front.state.may_protect(op.account, op.container, op.blob))
        lock = (front.state.blob_lock(op.account, op.container, op.blob)  # type: ignore[arg-type]
                if guarded else contextlib.nullcontext())
        try:
            with lock:
                try:
                    entry.update(front.check(op, auth, principal, headers, raw_path))
                except Refused as refused:
                    entry["decision"], entry["errorCode"] = refused.decision, refused.err.code
                    entry["status"] = self._send_error(refused.err)
                    return
                except Relay as relay:
                    entry["decision"] = "refused-authentication"
                    entry["errorCode"] = dict((k.lower(), v) for k, v in relay.headers).get("x-ms-error-code")
                    entry["status"] = self._send_relay(relay)
                    return
                offset = front.state.clock_offset
                if op.from_url:
                    entry["status"], entry["errorCode"], last_modified = self._from_url(op, headers, raw_path,
                                                                                        raw_query)
                else:
                    entry["status"], entry["errorCode"], last_modified = self._forward(op, raw_query)
                front.after(op, entry["status"], last_modified, offset)
        except UpstreamError as exc:
            entry["decision"] = "upstream-error"
            entry["error"] = str(exc)[:300]
            self.close_connection = True
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            entry["decision"] = "connection-error"
            entry["error"] = str(exc)[:300]
            self.close_connection = True
        finally:
            entry["durationMs"] = round((time.monotonic() - started) * 1000, 1)
            front.state.record(entry)

    def _from_url(self, op: Operation, headers: dict[str, str], raw_path: str,
                  raw_query: str) -> tuple[int, str | None, str | None]:
        """Put Blob / Put Block From URL, done by the front (emulator/blobfront/fromurl.py)."""
        from .fromurl import CopyRefused, perform

        self.drain()  # no body (Content-Length: 0)
        try:
            answer = perform(self.server.front, op, headers, raw_path, raw_query)
        except CopyRefused as refused:
            return self._send_error(refused.err), refused.err.code, None
        lowered = {k.lower(): v for k, v in answer.headers}
        self.write_head(answer.status, answer.reason, [*answer.headers, ("Content-Length", str(len(answer.body)))])
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        return answer.status, lowered.get("x-ms-error-code"), lowered.get("last-modified")

    def _forward(self, op: Operation, raw_query: str) -> tuple[int, str | None, str | None]:
        front = self.server.front
        out = urllib3.HTTPHeaderDict()
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP:
                out.add(name, value)
        kind, length = self._body_plan()
        body: Any = None
        if kind == "bad":
            out["Content-Length"] = self.headers.get("Content-Length", "")  # Azurite answers it
        elif kind == "length":
            body = self._read_length(length) if length else b""
        elif kind == "chunked":
            body = self._read_chunked()
        try:
            resp = front.pool.urlopen(
                self.command, self.path, body=body, headers=out, retries=False, redirect=False,
                preload_content=False, decode_content=False, chunked=kind == "chunked", assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(str(exc)) from exc
        try:
            return self._relay(op, resp, raw_query)
        finally:
            resp.release_conn()

    def _relay(self, op: Operation, resp: BaseHTTPResponse, raw_query: str) -> tuple[int, str | None, str | None]:
        front = self.server.front
        status = resp.status
        headers = [(k, v) for k, v in resp.headers.iteritems() if k.lower() not in HOP_BY_HOP]
        lowered = {k.lower(): v for k, v in headers}
        error_code = lowered.get("x-ms-error-code")
        result = (status, error_code, lowered.get("last-modified"))
        version_ok = (self.headers.get("x-ms-version") or "9999") >= IMMUTABILITY_VERSION
        if op.blob_read and status in (200, 206) and version_ok:
            headers += front.blob_headers(op, lowered)
        if op.container_properties and status == 200:
            extra = front.container_headers(op)
            headers = [(k, v) for k, v in headers if k.lower() not in extra] + list(extra.items())
        no_body = self.command == "HEAD" or status in (204, 304) or status < 200
        if no_body:
            self.write_head(status, resp.reason or "", headers)
            resp.drain_conn()
            return result
        include = {i.strip().lower() for i in lower_query(raw_query).get("include", "").split(",")}
        if (op.list_blobs and status == 200 and version_ok and include & {"immutabilitypolicy", "legalhold"}
                and op.account and op.container and front.state.listing_affected(op.account, op.container)):
            body = front.rewrite_listing(op, resp.read(), include)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
            self.write_head(status, resp.reason or "", headers)
            self.wfile.write(body)
            return result
        if "content-length" in lowered:
            self.write_head(status, resp.reason or "", headers)
            for chunk in resp.stream(CHUNK, decode_content=False):
                self.wfile.write(chunk)
            return result
        self.write_head(status, resp.reason or "", [*headers, ("Transfer-Encoding", "chunked")])
        for chunk in resp.stream(CHUNK, decode_content=False):
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
        return result
