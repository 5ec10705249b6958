"""APIM's data plane towards the backup storage account: real blobs in Azurite.

The emulator authenticates to Azurite with the account key from the seed whatever ``accessType``
the caller chose: the access-type rules (key match, identity roles) are decided by the engine
before any blob is touched, the way APIM would be refused by Azure Storage.

Four Blob REST calls are all APIM's data plane needs here (Put Blob, Create Container, Get Blob,
Get Blob Service Properties), so they are made directly: Shared Key signed requests on one pooled
``requests`` session. Through azure-storage-blob each call cost about 1.5 ms of CPU in its pipeline,
several times the emulator's own work for a request (see bench/emulator_load.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

API_VERSION = "2021-12-02"
# Connections kept open to Azurite: enough for the completion workers plus the POSTs reading CORS.
POOL_SIZE = 32
# Fail fast: a stuck storage call must not keep an operation (and its service) busy for minutes.
TIMEOUTS = (5, 15)  # connect, read
RETRIES = 2  # on connection errors and 500/503, after 0.2 s and 0.4 s
HEADERS_SIGNED = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


class BlobMissingError(Exception):
    """The container or the blob does not exist."""


class StorageUnavailableError(Exception):
    """Azurite could not be reached or refused the request."""


class BlobStore:
    def __init__(self, blob_endpoint: str, ca_bundle: Path | None) -> None:
        self.blob_endpoint = blob_endpoint.rstrip("/")
        self._prefix = urlsplit(self.blob_endpoint).path  # path-style endpoint: usually ""
        self._verify: str | bool = str(ca_bundle) if ca_bundle else True
        self._session = requests.Session()
        self._session.trust_env = False  # loopback Azurite: no proxies, and no proxy lookup per request
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._containers: set[tuple[str, str]] = set()  # known to exist

    def close(self) -> None:
        self._session.close()

    def _call(
        self,
        method: str,
        account: str,
        key: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> requests.Response:
        """One signed request; ``path`` is below the account (``/container/blob``, quoted here)."""
        quoted = f"/{account}{quote(path, safe='/~')}"
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(0.2 * 2 ** (attempt - 1))
            signed = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION, **(headers or {})}
            if body or method == "PUT":
                signed["Content-Length"] = str(len(body))
            signed["Authorization"] = _shared_key(
                method, account, key, self._prefix + quoted, query=query or {}, headers=signed
            )
            try:
                response = self._session.request(
                    method,
                    self.blob_endpoint + quoted,
                    params=query,
                    headers=signed,
                    data=body or None,
                    verify=self._verify,
                    timeout=TIMEOUTS,
                )
            except requests.RequestException as exc:
                if attempt == RETRIES:
                    raise StorageUnavailableError(f"{type(exc).__name__}: {exc}") from exc
                continue
            if response.status_code not in (500, 503) or attempt == RETRIES:
                return response
        raise AssertionError("unreachable")

    def write(self, account: str, key: str, container: str, blob: str, data: bytes) -> None:
        headers = {"x-ms-blob-type": "BlockBlob", "x-ms-meta-writer": "apim-dr-emulator"}
        # "If the storage container doesn't exist, the backup operation creates it." (DOC, 12/2025)
        # Once per container and emulator run; again if it was deleted since (the upload's 404).
        if (account, container) not in self._containers:
            self._create_container(account, key, container)
        answer = self._call("PUT", account, key, f"/{container}/{blob}", headers=headers, body=data)
        if answer.status_code == 404:
            self._create_container(account, key, container)
            answer = self._call("PUT", account, key, f"/{container}/{blob}", headers=headers, body=data)
        if answer.status_code != 201:
            raise StorageUnavailableError(_describe(answer))

    def _create_container(self, account: str, key: str, container: str) -> None:
        created = self._call("PUT", account, key, f"/{container}", query={"restype": "container"})
        if created.status_code not in (201, 409):  # 409: it exists
            raise StorageUnavailableError(_describe(created))
        self._containers.add((account, container))

    def read(self, account: str, key: str, container: str, blob: str) -> bytes:
        answer = self._call("GET", account, key, f"/{container}/{blob}")
        if answer.status_code == 404:
            raise BlobMissingError(_describe(answer))
        if answer.status_code != 200:
            raise StorageUnavailableError(_describe(answer))
        return answer.content

    def cors_allowed_methods(self, account: str, key: str) -> str | None:
        """The allowed methods of the first CORS rule on the blob service, or None without CORS.

        If storage cannot be read the answer is None: the operation then fails later, asynchronously,
        when it touches storage (as APIM would).
        """
        try:
            answer = self._call("GET", account, key, "/", query={"restype": "service", "comp": "properties"})
            if answer.status_code != 200:
                raise StorageUnavailableError(_describe(answer))
            rule = ET.fromstring(answer.content).find("Cors/CorsRule")
        except (StorageUnavailableError, ET.ParseError) as exc:
            logger.warning("cannot read blob service properties of %s: %s", account, exc)
            return None
        if rule is None:
            return None
        return (rule.findtext("AllowedMethods") or "").strip()


def _shared_key(
    method: str, account: str, key: str, resource: str, *, query: dict[str, str], headers: dict[str, str]
) -> str:
    """``Authorization: SharedKey`` (Blob service, version 2009-09-19 and later)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if lowered.get("content-length") == "0":
        del lowered["content-length"]
    standard = "".join(lowered.get(name, "") + "\n" for name in HEADERS_SIGNED)
    ms_headers = "".join(f"{name}:{lowered[name]}\n" for name in sorted(n for n in lowered if n.startswith("x-ms-")))
    canonical_query = "".join(f"\n{name.lower()}:{value}" for name, value in sorted(query.items()))
    string_to_sign = f"{method}\n{standard}{ms_headers}/{account}{resource}{canonical_query}"
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


def _describe(response: requests.Response) -> str:
    return f"{response.status_code} {response.headers.get('x-ms-error-code') or response.reason}".strip()
