"""A small client for the front's admin API (``/_front/``), one method per endpoint."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests


class BlobFrontAdminError(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status = status
        self.code = error.get("code")


class BlobFrontAdmin:
    def __init__(self, base_url: str, ca_bundle: Path | str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.verify = str(ca_bundle)
        self.session.trust_env = False

    def _call(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
              send_body: bool = False) -> Any:
        kwargs: dict[str, Any] = {"params": params, "timeout": 30}
        if body is not None or send_body:
            kwargs["data"] = json.dumps(body).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        response = self.session.request(method, f"{self.base_url}/_front{path}", **kwargs)
        payload = response.json() if response.content else None
        if response.status_code >= 400:
            raise BlobFrontAdminError(response.status_code, payload)
        return payload

    # -- general ---------------------------------------------------------------------------------
    def health(self) -> Any:
        return self._call("GET", "/health")

    def state(self) -> Any:
        return self._call("GET", "/state")

    def reset(self) -> Any:
        return self._call("POST", "/reset")

    # -- clock -----------------------------------------------------------------------------------
    def clock(self) -> Any:
        return self._call("GET", "/clock")

    def set_clock_offset(self, seconds: float) -> Any:
        return self._call("PUT", "/clock", {"offsetSeconds": seconds})

    def advance_clock(self, seconds: float) -> Any:
        return self._call("POST", "/clock/advance", {"seconds": seconds})

    # -- immutability ----------------------------------------------------------------------------
    def set_account_policy(self, account: str, retention_days: int, *, locked: bool = False) -> Any:
        return self._call("PUT", f"/accounts/{quote(account)}/policy",
                          {"retentionDays": retention_days, "locked": locked})

    def clear_account_policy(self, account: str) -> Any:
        return self._call("DELETE", f"/accounts/{quote(account)}/policy")

    def set_container_policy(self, account: str, container: str, retention_days: int, *, locked: bool = False,
                             allow_protected_append_writes: bool = False) -> Any:
        return self._call("PUT", f"/containers/{quote(account)}/{quote(container)}/policy",
                          {"retentionDays": retention_days, "locked": locked,
                           "allowProtectedAppendWrites": allow_protected_append_writes})

    def clear_container_policy(self, account: str, container: str) -> Any:
        return self._call("DELETE", f"/containers/{quote(account)}/{quote(container)}/policy")

    def set_container_legal_hold(self, account: str, container: str, tags: list[str]) -> Any:
        return self._call("PUT", f"/containers/{quote(account)}/{quote(container)}/legal-hold", {"tags": tags})

    def clear_container_legal_hold(self, account: str, container: str) -> Any:
        return self._call("DELETE", f"/containers/{quote(account)}/{quote(container)}/legal-hold")

    def set_blob_policy(self, account: str, container: str, blob: str, until: datetime | str, *,
                        mode: str = "Unlocked") -> Any:
        text = until.isoformat() if isinstance(until, datetime) else until
        return self._call("PUT", f"/blobs/{quote(account)}/{quote(container)}/policy", {"until": text, "mode": mode},
                          params={"blob": blob})

    def clear_blob_policy(self, account: str, container: str, blob: str) -> Any:
        return self._call("DELETE", f"/blobs/{quote(account)}/{quote(container)}/policy", params={"blob": blob})

    def set_blob_legal_hold(self, account: str, container: str, blob: str, legal_hold: bool = True) -> Any:
        return self._call("PUT", f"/blobs/{quote(account)}/{quote(container)}/legal-hold",
                          {"legalHold": legal_hold}, params={"blob": blob})

    def clear_blob_legal_hold(self, account: str, container: str, blob: str) -> Any:
        return self._call("DELETE", f"/blobs/{quote(account)}/{quote(container)}/legal-hold", params={"blob": blob})

    # -- outages ---------------------------------------------------------------------------------
    def set_account_outage(self, account: str) -> Any:
        """The account's endpoint stops answering (a regional storage outage) until cleared or reset."""
        return self._call("PUT", f"/accounts/{quote(account)}/outage")

    def clear_account_outage(self, account: str) -> Any:
        return self._call("DELETE", f"/accounts/{quote(account)}/outage")

    # -- RBAC ------------------------------------------------------------------------------------
    def roles(self) -> Any:
        return self._call("GET", "/roles")["roles"]

    def set_roles(self, table: dict[str, list[dict[str, Any]]] | None) -> Any:
        """``{principal oid: [{"role": name|guid, "scope": ...} | {"dataActions": [...], "scope": ...}]}``."""
        return self._call("PUT", "/roles", table, send_body=True)["roles"]

    def clear_roles(self) -> Any:
        return self._call("DELETE", "/roles")

    def builtin_roles(self) -> Any:
        return self._call("GET", "/roles/builtin")["roles"]

    # -- request log -----------------------------------------------------------------------------
    def requests(self, *, method: str | None = None, path_contains: str | None = None,
                 decision: str | None = None, operation: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"method": method, "pathContains": path_contains, "decision": decision,
                                    "operation": operation}.items() if v is not None}
        return list(self._call("GET", "/requests", params=params)["requests"])

    def clear_requests(self) -> Any:
        return self._call("DELETE", "/requests")
