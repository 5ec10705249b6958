"""The engine: emulated state behind one lock, and the backup/restore operation lifecycle.

An operation is accepted synchronously (202) and completes when the emulator clock passes
``startedAt + duration``: lazily on any request, or from the server's background ticker. Completion
is where the storage work happens (``backups``) and where asynchronous failures (``RestoreFailed`` ...)
are decided, as in Azure.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
from pathlib import Path
from typing import Any

from . import faults as fault_rules
from .backups import OperationFailedError, restore_backup, sha256, storage_account_for, user_identity, write_backup
from .errors import apim_error, invalid_parameter
from .params import BackupRestoreParameters
from .resources import BACKUP_TIERS, etag_for, new_operation_id, render_service, service_id
from .seed import CONFIGURATION_COLLECTIONS, load_seed
from .state import Clock, Store, iso
from .storage import BlobStore

logger = logging.getLogger(__name__)

DEFAULT_WRITE_THROTTLING = {"enabled": False, "burst": 200, "refillPerSecond": 10}


class Engine:
    """All emulated state behind one lock; the HTTP layers call into it."""

    def __init__(self, store: Store, blobs: BlobStore, *, retry_after: float = 1, op_duration: float = 2.0) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = Clock(store)
        self.lock = threading.RLock()
        self.default_retry_after = retry_after
        self.default_op_duration = op_duration
        self.buckets = fault_rules.TokenBuckets()

    # -- seeding -------------------------------------------------------------------------------
    def initialize(self, seed_source: dict[str, Any] | Path | None, *, reset: bool) -> None:
        with self.lock:
            if reset or self.store.is_empty():
                if seed_source is None:
                    raise ValueError("a seed is needed to initialise an empty state directory")
                self.apply_seed(load_seed(seed_source))
            else:
                logger.info("resuming from existing state in %s", self.store.path)
            if self.store.get("signingKey") is None:
                self.store.put("signingKey", secrets.token_hex(32))

    def apply_seed(self, seed: dict[str, Any]) -> None:
        with self.lock:
            signing_key = self.store.get("signingKey")
            with self.store.transaction():
                self.store.delete_services()
                self.store.delete_operations()
                self.store.clear_requests()
                self.store.put("seed", seed)
                self.store.put("tenantId", seed["tenantId"])
                self.store.put("subscriptions", seed["subscriptions"])
                self.store.put("storageAccounts", {a["name"]: a for a in seed["storageAccounts"]})
                self.store.put("functionApp", seed["functionApp"])
                self.store.put("armRoles", seed["armRoles"])
                self.store.put("settings", {})
                self.store.put("faults", [])
                self.store.put("clockOffset", 0.0)
                if signing_key is not None:
                    self.store.put("signingKey", signing_key)
                for svc in seed["services"]:
                    self.store.put_service(svc)
            self.buckets.reset()

    def reset(self) -> None:
        """Back to the seed the state was created from (admin ``POST /_emulator/reset``)."""
        with self.lock:
            self.apply_seed(self.store.get("seed"))

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        overrides = self.store.get("settings", {})
        return {
            "retryAfter": overrides.get("retryAfter", self.default_retry_after),
            "defaultOpDuration": overrides.get("defaultOpDuration", self.default_op_duration),
            "opDurations": dict(overrides.get("opDurations", {})),
            "writeThrottling": DEFAULT_WRITE_THROTTLING | overrides.get("writeThrottling", {}),
            "pageSize": overrides.get("pageSize", 100),
        }

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        allowed = {"retryAfter", "defaultOpDuration", "opDurations", "writeThrottling", "pageSize"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        with self.lock:
            overrides = self.store.get("settings", {})
            if "retryAfter" in changes:
                value = changes["retryAfter"]
                if not isinstance(value, int | float) or value < 1:
                    raise ValueError("retryAfter must be a number of seconds >= 1")
                overrides["retryAfter"] = value
            if "defaultOpDuration" in changes:
                overrides["defaultOpDuration"] = _non_negative(changes["defaultOpDuration"], "defaultOpDuration")
            if "opDurations" in changes:
                durations = dict(overrides.get("opDurations", {}))
                for name, seconds in (changes["opDurations"] or {}).items():
                    if seconds is None:
                        durations.pop(name.lower(), None)
                    else:
                        durations[name.lower()] = _non_negative(seconds, f"opDurations[{name}]")
                overrides["opDurations"] = durations
            if "writeThrottling" in changes:
                throttling = DEFAULT_WRITE_THROTTLING | overrides.get("writeThrottling", {})
                throttling |= {k: v for k, v in (changes["writeThrottling"] or {}).items() if k in throttling}
                if throttling["burst"] < 1 or throttling["refillPerSecond"] < 0:
                    raise ValueError("writeThrottling needs burst >= 1 and refillPerSecond >= 0")
                overrides["writeThrottling"] = throttling
                self.buckets.reset()
            if "pageSize" in changes:
                size = changes["pageSize"]
                if not isinstance(size, int) or size < 1:
                    raise ValueError("pageSize must be a positive integer")
                overrides["pageSize"] = size
            self.store.put("settings", overrides)
            return self.settings()

    def retry_after(self) -> int:
        # Whole seconds >= 1: "Retry-After: 0" makes azure-core fall back to its polling interval.
        value = float(self.settings()["retryAfter"])
        return max(1, int(value) if value.is_integer() else int(value) + 1)

    def op_duration(self, service: str) -> float:
        settings = self.settings()
        return float(settings["opDurations"].get(service.lower(), settings["defaultOpDuration"]))

    # -- faults --------------------------------------------------------------------------------
    def faults(self) -> list[dict[str, Any]]:
        return list(self.store.get("faults", []))

    def add_fault(self, raw: dict[str, Any]) -> dict[str, Any]:
        fault = fault_rules.normalize_fault(raw)
        with self.lock:
            self.store.put("faults", [*self.faults(), fault])
        return fault

    def clear_faults(self, fault_id: str | None = None) -> None:
        with self.lock:
            kept = [f for f in self.faults() if fault_id is not None and f["id"] != fault_id]
            self.store.put("faults", kept)

    def take_fault(self, kinds: tuple[str, ...], route: str, service: str | None) -> dict[str, Any] | None:
        with self.lock:
            fault, remaining = fault_rules.take(self.faults(), kinds, route, service)
            if fault is not None:
                self.store.put("faults", remaining)
                logger.info("injecting fault %s on %s %s", fault["id"], route, service or "")
            return fault

    # -- services ------------------------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any] | None:
        return self.store.service(name)

    def update_service(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Admin changes to a service (configuration, provisioning state, sku, identity ...)."""
        allowed = {
            "configuration",
            "provisioningState",
            "targetProvisioningState",
            "sku",
            "identity",
            "tags",
            "location",
            "hostnameConfigurations",
            "publisherEmail",
            "publisherName",
            "publicIPAddresses",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change: {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")
        with self.lock:
            svc = self.store.service(name)
            if svc is None:
                raise KeyError(name)
            for key, value in changes.items():
                if key == "configuration":
                    if not isinstance(value, dict) or set(value) - set(CONFIGURATION_COLLECTIONS):
                        raise ValueError(f"configuration may only hold {', '.join(CONFIGURATION_COLLECTIONS)}")
                    for collection, items in value.items():
                        if not isinstance(items, list):
                            raise ValueError(f"configuration.{collection} must be a list")
                        svc["configuration"][collection] = copy.deepcopy(items)
                else:
                    svc[key] = copy.deepcopy(value)
            svc["etagCounter"] += 1
            self.store.put_service(svc)
            return svc

    def is_locked(self, svc: dict[str, Any]) -> bool:
        return svc.get("activeOperation") is not None or svc["provisioningState"] != "Succeeded"

    # -- operations ----------------------------------------------------------------------------
    def start(
        self, kind: str, svc_name: str, params: BackupRestoreParameters, api_version: str, principal: str
    ) -> dict[str, Any]:
        """Accept a backup/restore or raise the synchronous error APIM would send."""
        with self.lock:
            svc = self.store.service(svc_name)
            if svc is None:
                raise KeyError(svc_name)
            tier = svc["sku"]["name"]
            if tier not in BACKUP_TIERS:
                raise apim_error(400, "MethodNotAllowedInPricingTier", f"Method not allowed in {tier} pricing tier")
            self._check_identity_configured(svc, params)
            if self.is_locked(svc):
                raise apim_error(
                    409,
                    "ServiceLocked",
                    f"The API Service {svc['name']} is transitioning at this time. Please try the request again later.",
                )
            account = self.store.get("storageAccounts", {}).get(params.storage_account)
            if account is not None:
                methods = self.blobs.cors_allowed_methods(account["name"], account["key"])
                if methods is not None:
                    # What APIM's storage client says when the blob service has CORS rules (azure-powershell #23411).
                    raise invalid_parameter(f"Requested value '{methods}' was not found.", "backupStorageAccount")
            injected = self.take_fault(("op_failure",), kind, svc["name"])
            now = self.clock.now()
            op_id = new_operation_id(svc["location"], svc["name"])
            op = {
                "id": op_id,
                "kind": kind,
                "service": svc["name"],
                "subscriptionId": svc["subscriptionId"],
                "resourceGroup": svc["resourceGroup"],
                "apiVersion": api_version,
                "locationPath": (
                    f"{service_id(svc['subscriptionId'], svc['resourceGroup'], svc['name'])}/operationresults/{op_id}"
                ),
                "parameters": {
                    "storageAccount": params.storage_account,
                    "containerName": params.container_name,
                    "backupName": params.backup_name,
                    "accessType": params.access_type,
                    "clientId": params.client_id,
                    # Only a digest: the state file should not hold a usable storage key.
                    "accessKeySha256": sha256(params.access_key) if params.access_key is not None else None,
                },
                "principal": principal,
                "status": "Running",
                "startedAt": now,
                "startedAtUtc": iso(now),
                "duration": self.op_duration(svc["name"]),
                "completedAt": None,
                "error": None,
                "result": None,
                "injectedFailure": injected,
            }
            svc["activeOperation"] = op_id
            svc["provisioningState"] = "Updating"
            # Not evidenced for backup; "Succeeded" is the state the operation returns to (apim-arm.md §3.2).
            svc["targetProvisioningState"] = "Succeeded"
            svc["etagCounter"] += 1
            with self.store.transaction():
                self.store.put_operation(op)
                self.store.put_service(svc)
            logger.info("%s of %s started as %s (%.1fs)", kind, svc["name"], op_id, op["duration"])
            return op

    def _check_identity_configured(self, svc: dict[str, Any], params: BackupRestoreParameters) -> None:
        identity = svc.get("identity") or {}
        if params.access_type == "SystemAssignedManagedIdentity" and "SystemAssigned" not in identity.get("type", ""):
            raise invalid_parameter(
                f"System assigned managed identity is not enabled on API Management service '{svc['name']}'.",
                "accessType",
            )
        if params.access_type == "UserAssignedManagedIdentity" and user_identity(svc, params.client_id) is None:
            raise invalid_parameter(
                f"User assigned managed identity with client id '{params.client_id}' is not assigned to "
                f"API Management service '{svc['name']}'.",
                "clientId",
            )

    def operation(self, op_id: str) -> dict[str, Any] | None:
        return self.store.operation(op_id)

    def complete_due(self) -> int:
        """Finish every running operation whose time has come; returns how many finished."""
        with self.lock:
            now = self.clock.now()
            done = 0
            for op in self.store.operations(status="Running"):
                if now >= op["startedAt"] + op["duration"]:
                    try:
                        self._complete(op, now)
                    except Exception as exc:
                        # An emulator bug must fail this operation, not every later request that retries it.
                        logger.exception("completing %s failed", op["id"])
                        self._abandon(op, now, exc)
                    done += 1
            return done

    def _abandon(self, op: dict[str, Any], now: float, exc: Exception) -> None:
        svc = self.store.service(op["service"])
        if svc is not None and svc.get("activeOperation") == op["id"]:
            svc |= {"activeOperation": None, "provisioningState": "Succeeded", "targetProvisioningState": ""}
            svc["etagCounter"] += 1
            self.store.put_service(svc)
        op |= {"status": "Failed", "completedAt": now}
        op["error"] = {
            "status": 500,
            "code": "InternalServerError",
            "message": f"The emulator failed to complete the operation ({type(exc).__name__}); see its log.",
        }
        self.store.put_operation(op)

    def _complete(self, op: dict[str, Any], now: float) -> None:
        svc = self.store.service(op["service"])
        if svc is None:  # removed by an admin reset; nothing left to finish
            op |= {"status": "Failed", "completedAt": now}
            op["error"] = {"status": 404, "code": "ResourceNotFound", "message": "The service no longer exists."}
            self.store.put_operation(op)
            return
        failure: OperationFailedError | None = None
        injected = op.get("injectedFailure")
        try:
            if injected is not None:
                default_code = "BackupFailed" if op["kind"] == "backup" else "RestoreFailed"
                raise OperationFailedError(
                    injected.get("code") or default_code,
                    injected.get("message") or f"Injected {op['kind']} failure.",
                    int(injected.get("status") or 400),
                )
            account = storage_account_for(op, svc, self.store.get("storageAccounts", {}))
            if op["kind"] == "backup":
                write_backup(self.blobs, op, svc, account, now)
            else:
                restore_backup(self.blobs, op, svc, account, now)
        except OperationFailedError as exc:
            failure = exc
        if svc.get("activeOperation") == op["id"]:
            svc["activeOperation"] = None
            svc["provisioningState"] = "Succeeded"
            svc["targetProvisioningState"] = ""
        svc["etagCounter"] += 1
        op["completedAt"] = now
        if failure is None:
            op["status"] = "Succeeded"
            op["result"] = render_service(svc)
        else:
            op["status"] = "Failed"
            op["error"] = {"status": failure.status, "code": failure.code, "message": failure.message}
        with self.store.transaction():
            self.store.put_service(svc)
            self.store.put_operation(op)
        logger.info("%s %s of %s: %s", op["kind"], op["id"], op["service"], op["status"])

    # -- views ---------------------------------------------------------------------------------
    def service_view(self, name: str) -> dict[str, Any] | None:
        """Everything about a service, for ``GET /_emulator/services/{name}``."""
        with self.lock:
            svc = self.store.service(name)
            if svc is None:
                return None
            return svc | {"etag": etag_for(svc["etagCounter"]), "resource": render_service(svc)}


def _non_negative(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0")
    return float(value)
