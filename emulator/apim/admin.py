"""``EmulatorAdmin``: a small client for the test-only ``/_emulator/`` endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests


class EmulatorAdminError(RuntimeError):
    pass


class EmulatorAdmin:
    def __init__(self, arm_url: str, ca_bundle: Path | str | None, *, timeout: float = 30) -> None:
        self.base_url = arm_url.rstrip("/") + "/_emulator"
        self._session = requests.Session()
        self._session.verify = str(ca_bundle) if ca_bundle else True
        self._session.trust_env = False  # never route loopback admin calls through a proxy
        self._timeout = timeout

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        response = self._session.request(
            method, f"{self.base_url}{path}", json=body, params=params, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise EmulatorAdminError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    # -- lifecycle -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def reset(self) -> None:
        """Back to the seed: services, operations, faults, settings, roles, clock and request log."""
        self._call("POST", "/reset")

    def tick(self) -> int:
        """Complete every operation that is due now; returns how many completed."""
        return int(self._call("POST", "/tick")["completed"])

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/state"))

    # -- clock ---------------------------------------------------------------------------------
    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/clock"))

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the emulator clock forward (completes due operations, ages backups)."""
        return dict(self._call("POST", "/clock", {"advanceSeconds": seconds}))

    # -- faults --------------------------------------------------------------------------------
    def set_fault(
        self,
        kind: str = "http",
        *,
        on: str = "any",
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
        count: int | None = 1,
        retry_after: float | None = None,
        service: str | None = None,
        then: str | int | None = None,
    ) -> dict[str, Any]:
        """Inject a fault; see emulator/apim/faults.py for kinds ("http", "throttle", "op_failure",
        "drop_answer") and targets."""
        body: dict[str, Any] = {"kind": kind, "on": on, "count": count, "service": service}
        for key, value in (
            ("status", status),
            ("code", code),
            ("message", message),
            ("retryAfter", retry_after),
            ("then", then),
        ):
            if value is not None:
                body[key] = value
        return dict(self._call("POST", "/faults", body))

    def drop_answer(
        self,
        on: str = "start",
        *,
        then: str | int = "close",
        service: str | None = None,
        count: int | None = 1,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> dict[str, Any]:
        """Handle the next matching request in full (a backup really starts), then lose its answer:
        ``then="close"`` closes the connection without a response, ``then=503`` (any 400-599) sends that
        error instead. The request log keeps the real status and adds ``droppedAnswer``."""
        return self.set_fault(
            "drop_answer",
            on=on,
            then=then,
            service=service,
            count=count,
            code=code,
            message=message,
            retry_after=retry_after,
        )

    def throttle(self, *, on: str = "any", count: int = 1, retry_after: float = 10) -> dict[str, Any]:
        return self.set_fault("throttle", on=on, count=count, retry_after=retry_after)

    def fail_next_operation(
        self, service: str, *, code: str | None = None, message: str | None = None, status: int = 400
    ) -> dict[str, Any]:
        return self.set_fault("op_failure", on="start", service=service, code=code, message=message, status=status)

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["value"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    # -- request log ---------------------------------------------------------------------------
    def requests(
        self, method: str | None = None, path_contains: str | None = None, server: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("method", method), ("pathContains", path_contains), ("server", server)) if v}
        return list(self._call("GET", "/requests", params=params)["value"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    # -- services and operations ---------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any]:
        """Full emulated state of a service: record, configuration, ``resource`` (ARM body), ``etag``."""
        return dict(self._call("GET", f"/services/{name}"))

    def services(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/services")["value"])

    def update_service(self, name: str, **changes: Any) -> dict[str, Any]:
        """E.g. ``update_service("apim-a", configuration={"apis": [...]}, provisioningState="Updating")``."""
        return dict(self._call("PATCH", f"/services/{name}", changes))

    def operations(self, service: str | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/operations", params={"service": service} if service else None)["value"])

    def operation(self, op_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/operations/{op_id}"))

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return dict(self._call("GET", "/settings"))

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        return dict(self._call("PATCH", "/settings", changes))

    def set_op_duration(self, seconds: float, service: str | None = None) -> dict[str, Any]:
        """Duration of operations started from now on: for one service, or the default for all."""
        if service is None:
            return self.update_settings(defaultOpDuration=seconds)
        return self.update_settings(opDurations={service: seconds})

    def set_retry_after(self, seconds: float) -> dict[str, Any]:
        return self.update_settings(retryAfter=seconds)

    def set_write_throttling(
        self, enabled: bool = True, *, burst: int = 200, refill_per_second: float = 10
    ) -> dict[str, Any]:
        return self.update_settings(
            writeThrottling={"enabled": enabled, "burst": burst, "refillPerSecond": refill_per_second}
        )

    def set_read_throttling(
        self, enabled: bool = True, *, burst: int = 250, refill_per_second: float = 25
    ) -> dict[str, Any]:
        """ARM's read bucket per subscription and principal (off by default; 250 tokens, 25 per second)."""
        return self.update_settings(
            readThrottling={"enabled": enabled, "burst": burst, "refillPerSecond": refill_per_second}
        )

    def set_page_size(self, size: int) -> dict[str, Any]:
        return self.update_settings(pageSize=size)

    # -- RBAC and storage ----------------------------------------------------------------------
    def arm_roles(self) -> dict[str, Any] | None:
        roles = self._call("GET", "/arm-roles")["roles"]
        return None if roles is None else dict(roles)

    def set_arm_roles(self, roles: dict[str, list[dict[str, Any]]] | None) -> None:
        """``{principal oid: [{"actions": [...], "scope": "/subscriptions/..."}]}``; None allows everyone."""
        self._call("PUT", "/arm-roles", {"roles": roles})

    def storage_account(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/storage-accounts/{name}"))

    def set_storage_role_assignments(self, account: str, assignments: list[dict[str, str]]) -> dict[str, Any]:
        """Replace the account's data roles: ``[{"principalId": ..., "role": "Storage Blob Data Contributor"}]``."""
        return dict(self._call("PATCH", f"/storage-accounts/{account}", {"roleAssignments": assignments}))
