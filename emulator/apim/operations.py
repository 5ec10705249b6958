"""The engine: emulated state, and the backup/restore operation lifecycle.

An operation is accepted synchronously (202) and completes when the emulator clock passes
``startedAt + duration``: lazily on a request for its service (or a list, or an admin read), or from the
server's background ticker. Completion is where the storage work happens (``backups``) and where
asynchronous failures (``RestoreFailed`` ...) are decided, as in Azure.

Locking (no lock is held during storage I/O):

- one lock per service serialises what must not interleave on it: starting an operation (so two
  concurrent POSTs give one 202 and one 409), finishing one, admin changes;
- finishing an operation is claimed per operation id, so it runs once however many threads find it due;
  its blob write/read runs before the service lock is taken, the outcome is applied under it;
- ``lock`` (re-entrant) guards read-modify-write of the small shared documents: settings, faults, roles,
  storage accounts, the clock;
- reset and seeding take the state lock exclusively; everything that changes services or operations
  holds it shared, so a reset never interleaves with a half-finished change;
- the ``Store`` serialises its own SQL.
"""

from __future__ import annotations

import copy
import logging
import math
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import configuration
from . import faults as fault_rules
from .backups import (
    OperationFailedError,
    apply_snapshot,
    read_snapshot,
    sha256,
    storage_account_for,
    user_identity,
    write_backup,
)
from .entity import Entity
from .errors import ArmError, apim_error, invalid_parameter
from .params import BackupRestoreParameters
from .resources import BACKUP_TIERS, etag_for, new_operation_id, render_service, service_id
from .seed import SeedError, load_seed
from .state import Clock, Store, iso
from .storage import BlobStore
from .views import Ctx, MemoryView, Mode, ServiceInfo

logger = logging.getLogger(__name__)

DEFAULT_WRITE_THROTTLING = {"enabled": False, "burst": 200, "refillPerSecond": 10}
# The developer portal's content: not in a native backup, untouched by a restore.
PORTAL_CONTENT_KEY = "contentTypes"
PORTAL_CONTENT_KINDS = ("contenttypes", "contenttypes/contentitems")
# ARM's read bucket per subscription and principal: 250 tokens, 25 per second (apim-arm.md §4.3).
DEFAULT_READ_THROTTLING = {"enabled": False, "burst": 250, "refillPerSecond": 25}
THROTTLING_SETTINGS = {"writeThrottling": DEFAULT_WRITE_THROTTLING, "readThrottling": DEFAULT_READ_THROTTLING}
# Threads that finish due operations (their storage I/O runs in parallel; Azurite is the limit).
COMPLETION_WORKERS = 8


class SharedLock:
    """Many holders in shared mode, or one in exclusive mode. Shared holders may nest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._shared:
                self._cond.wait()
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Claim:
    """One thread finishing one operation; others that find it due wait for ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.finished = False  # the operation is no longer running


class Engine:
    """All emulated state; the HTTP layers call into it from many threads."""

    def __init__(self, store: Store, blobs: BlobStore, *, retry_after: float = 1, op_duration: float = 2.0) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = Clock(store)
        self.lock = threading.RLock()
        self.default_retry_after = retry_after
        self.default_op_duration = op_duration
        self.buckets = fault_rules.TokenBuckets()
        self._state = SharedLock()
        self._guard = threading.Lock()  # the dictionaries below
        self._service_locks: dict[str, threading.Lock] = {}
        self._claims: dict[str, _Claim] = {}
        self._queued: set[str] = set()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        # Earliest end of a running operation (emulator clock): requests before it skip the due query.
        self._due_lock = threading.Lock()
        self._next_due = -math.inf  # unknown until first looked up
        # Extensions (the stand-ins beside APIM, emulator/standins.py): called with the checked seed
        # when state is (re)initialised from it; completers finish operations of other kinds than
        # backup/restore, under the service lock: completer(svc, op, now) changes svc in place.
        self.seed_hooks: list[Callable[[dict[str, Any]], None]] = []
        self.completers: dict[str, Callable[[dict[str, Any], dict[str, Any], float], None]] = {}
        # (storage account record) -> a reason it cannot be reached now, or None (region outages)
        self.storage_unreachable: Callable[[dict[str, Any]], str | None] = lambda account: None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the completion workers; an operation being finished gets ``timeout`` seconds to end.

        (They are daemon threads: one stuck in storage I/O does not keep the process alive.)
        """
        with self._guard:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    @contextmanager
    def _service_lock(self, name: str) -> Iterator[None]:
        key = name.lower()
        with self._guard:
            lock = self._service_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    @contextmanager
    def service_write(self, name: str) -> Iterator[None]:
        """A change to a service's configuration entities: its lock, one store transaction."""
        with self._state.shared(), self._service_lock(name), self.store.transaction():
            yield

    # -- configuration ---------------------------------------------------------------------------
    def service_info(self, svc: dict[str, Any]) -> ServiceInfo:
        return ServiceInfo(
            name=svc["name"],
            resource_id=service_id(svc["subscriptionId"], svc["resourceGroup"], svc["name"]),
            tier=svc["sku"]["name"],
            identity=svc.get("identity"),
            now_iso=iso(self.clock.now()),
        )

    def build_configuration(
        self, svc: dict[str, Any], document: Any, *, mode: Mode, where: str = "configuration"
    ) -> list[Entity]:
        """The entities of a configuration document for ``svc`` (nothing is written).

        :raises configuration.ConfigurationError: naming the entry and the rule it breaks.
        """
        ctx = Ctx(MemoryView(self.store.next_version), self.service_info(svc), mode)
        return configuration.build(ctx, document, where=where)

    def configuration_document(self, name: str, *, backup: bool = False) -> dict[str, Any]:
        """The service's configuration as a document; ``backup``: what a native backup carries (everything but
        the developer portal's content, which APIM's backup omits: DOC "What is not backed up")."""
        document = configuration.export(self.store.entities(name))
        if backup:
            document.pop(PORTAL_CONTENT_KEY, None)
        return document

    # -- seeding -------------------------------------------------------------------------------
    def initialize(self, seed_source: dict[str, Any] | Path | None, *, reset: bool) -> None:
        with self._state.exclusive(), self.lock:
            if reset or self.store.is_empty():
                if seed_source is None:
                    raise ValueError("a seed is needed to initialise an empty state directory")
                self._apply_seed(load_seed(seed_source))
            else:
                logger.info("resuming from existing state in %s", self.store.path)
                self._upgrade_services()
            if self.store.get("signingKey") is None:
                self.store.put("signingKey", secrets.token_hex(32))
        self._refresh_next_due()

    def apply_seed(self, seed: dict[str, Any]) -> None:
        with self._state.exclusive(), self.lock:
            self._apply_seed(seed)
        self._refresh_next_due()

    def _apply_seed(self, seed: dict[str, Any]) -> None:
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
            built: dict[str, list[tuple[Any, ...]]] = {}  # equal documents (bench seeds) are built once
            for index, raw in enumerate(seed["services"]):
                svc = dict(raw)
                document = svc.pop("configuration", None) or {}
                key = f"{svc['sku']['name']}|{configuration.canonical(document)}"
                if key not in built:
                    try:
                        built[key] = self.store.entity_rows(self.build_configuration(
                            svc, document, mode="import", where=f"services[{index}].configuration"))
                    except configuration.ConfigurationError as exc:
                        raise SeedError(str(exc)) from exc
                self.store.put_service(svc)
                self.store.put_entities(svc["name"], built[key])
            for hook in self.seed_hooks:
                hook(seed)
            self._apply_seed_settings(seed.get("settings") or {})
        self.buckets.reset()

    def _apply_seed_settings(self, settings: dict[str, Any]) -> None:
        if settings:
            self.update_settings(settings)

    def _upgrade_services(self) -> None:
        """State files of earlier emulators kept each service's configuration inside its record: move it
        into the entities table."""
        for svc in self.store.services():
            if "configuration" not in svc:
                continue
            document = svc.pop("configuration") or {}
            logger.info("moving the configuration of %s into the entities table", svc["name"])
            entities = self.build_configuration(svc, document, mode="admin", where=f"{svc['name']}.configuration")
            with self.store.transaction():
                self.store.delete_service_entities(svc["name"])
                self.store.put_entities(svc["name"], entities)
                self.store.put_service(svc)

    def reset(self) -> None:
        """Back to the seed the state was created from (admin ``POST /_emulator/reset``)."""
        with self._state.exclusive(), self.lock:
            self._apply_seed(self.store.get("seed"))
        self._refresh_next_due()

    # -- settings ------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        overrides = self.store.get("settings", {})
        return {
            "retryAfter": overrides.get("retryAfter", self.default_retry_after),
            "defaultOpDuration": overrides.get("defaultOpDuration", self.default_op_duration),
            "opDurations": dict(overrides.get("opDurations", {})),
            "writeThrottling": DEFAULT_WRITE_THROTTLING | overrides.get("writeThrottling", {}),
            "readThrottling": DEFAULT_READ_THROTTLING | overrides.get("readThrottling", {}),
            "pageSize": overrides.get("pageSize", 100),
        }

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        allowed = {"retryAfter", "defaultOpDuration", "opDurations", "writeThrottling", "readThrottling", "pageSize"}
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
            for name, defaults in THROTTLING_SETTINGS.items():
                if name not in changes:
                    continue
                given = changes[name] or {}
                if not isinstance(given, dict) or set(given) - set(defaults):
                    raise ValueError(f"{name} takes {', '.join(defaults)}")
                throttling = defaults | overrides.get(name, {}) | given
                if (
                    not isinstance(throttling["enabled"], bool)
                    or not isinstance(throttling["burst"], int | float) or throttling["burst"] < 1
                    or not isinstance(throttling["refillPerSecond"], int | float) or throttling["refillPerSecond"] < 0
                ):
                    raise ValueError(f"{name} needs enabled true/false, burst >= 1 and refillPerSecond >= 0")
                overrides[name] = throttling
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
        if not self.store.get("faults"):  # every request asks; without faults no lock is taken
            return None
        with self.lock:
            fault, remaining = fault_rules.take(self.faults(), kinds, route, service)
            if fault is not None:
                self.store.put("faults", remaining)
                logger.info("injecting fault %s on %s %s", fault["id"], route, service or "")
            return fault

    # -- services ------------------------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any] | None:
        return self.store.service(name)

    def service_page(
        self, subscription: str, resource_group: str | None, offset: int, limit: int
    ) -> tuple[list[str], bool]:
        """One list page: the services' ARM bodies as JSON text, and whether more follow."""
        return self.store.service_page(subscription, resource_group, offset, limit)

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
            "customProperties",
            "certificates",
            "virtualNetworkType",
            "virtualNetworkConfiguration",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change: {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})")
        with self._state.shared(), self._service_lock(name):
            svc = self.store.service(name)
            if svc is None:
                raise KeyError(name)
            entities: list[Entity] | None = None
            for key, value in changes.items():
                if key != "configuration":
                    svc[key] = copy.deepcopy(value)
            if "configuration" in changes:
                # The given collections replace the current ones; links to what they removed go, as APIM's
                # deletes cascade.
                value = changes["configuration"]
                if not isinstance(value, dict):
                    raise ValueError("configuration must be an object of collections")
                document = self.configuration_document(name) | copy.deepcopy(value)
                try:
                    entities = self.build_configuration(svc, document, mode="admin")
                except configuration.ConfigurationError as exc:
                    raise ValueError(str(exc)) from exc
            svc["etagCounter"] += 1
            with self.store.transaction():
                self.store.put_service(svc)
                if entities is not None:
                    self.store.delete_service_entities(name)
                    self.store.put_entities(name, entities)
            return svc

    def is_locked(self, svc: dict[str, Any]) -> bool:
        return svc.get("activeOperation") is not None or svc["provisioningState"] != "Succeeded"

    def change_service(
        self,
        name: str,
        decide: Callable[[dict[str, Any]], tuple[dict[str, Any], bool]],
        apply: Callable[[dict[str, Any], dict[str, Any]], None],
        *,
        kind: str,
        api_version: str,
        principal: str,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A service write (ARM PUT/PATCH of the service), decided under the service's lock.

        ``decide(svc)`` raises the synchronous refusal (409 ``ServiceLocked`` included) or returns the
        changes and whether they take a long-running operation. Immediate changes are applied with
        ``apply(svc, changes)`` now; long ones start an operation of ``kind`` (the service turns
        ``Updating`` and other writes get 409 until it ends), finished by ``self.completers[kind]``.
        Returns the service as stored and the operation, if one was started.
        """
        with self._state.shared(), self._service_lock(name):
            svc = self.store.service(name)
            if svc is None:
                raise KeyError(name)
            changes, long_running = decide(svc)
            if not long_running:
                if changes:
                    apply(svc, changes)
                    svc["etagCounter"] += 1
                    self.store.put_service(svc)
                return svc, None
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
                "parameters": {"changes": changes},
                "principal": principal,
                "status": "Running",
                "startedAt": now,
                "startedAtUtc": iso(now),
                "duration": self.op_duration(svc["name"]),
                "completedAt": None,
                "error": None,
                "result": None,
                "injectedFailure": None,
            }
            svc["activeOperation"] = op_id
            svc["provisioningState"] = "Updating"
            svc["targetProvisioningState"] = "Succeeded"
            svc["etagCounter"] += 1
            with self.store.transaction():
                self.store.put_operation(op)
                self.store.put_service(svc)
            with self._due_lock:
                self._next_due = min(self._next_due, op["startedAt"] + op["duration"])
        logger.info("%s of %s started as %s (%.1fs)", kind, svc["name"], op_id, op["duration"])
        return svc, op

    # -- operations ----------------------------------------------------------------------------
    def start(
        self, kind: str, svc_name: str, params: BackupRestoreParameters, api_version: str, principal: str
    ) -> dict[str, Any]:
        """Accept a backup/restore or raise the synchronous error APIM would send."""
        with self._state.shared():
            svc = self.store.service(svc_name)
            if svc is None:
                raise KeyError(svc_name)
            self._check_startable(svc, params)
            cors = self._cors_refusal(params)  # a read from Azurite: before, not under, the service lock
            with self._service_lock(svc_name):
                svc = self.store.service(svc_name)
                if svc is None:
                    raise KeyError(svc_name)
                # Again: another request may have started an operation while CORS was read.
                self._check_startable(svc, params)
                if cors is not None:
                    raise cors
                op = self._new_operation(kind, svc, params, api_version, principal)
                svc["activeOperation"] = op["id"]
                svc["provisioningState"] = "Updating"
                # Not evidenced for backup; "Succeeded" is the state the operation returns to (apim-arm.md §3.2).
                svc["targetProvisioningState"] = "Succeeded"
                svc["etagCounter"] += 1
                with self.store.transaction():
                    self.store.put_operation(op)
                    self.store.put_service(svc)
                with self._due_lock:
                    self._next_due = min(self._next_due, op["startedAt"] + op["duration"])
        logger.info("%s of %s started as %s (%.1fs)", kind, svc["name"], op["id"], op["duration"])
        return op

    def _check_startable(self, svc: dict[str, Any], params: BackupRestoreParameters) -> None:
        """APIM's synchronous refusals, in its order (CORS, checked last, is read separately)."""
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

    def _cors_refusal(self, params: BackupRestoreParameters) -> ArmError | None:
        account = self.store.get("storageAccounts", {}).get(params.storage_account)
        if account is None:
            return None
        methods = self.blobs.cors_allowed_methods(account["name"], account["key"])
        if methods is None:
            return None
        # What APIM's storage client says when the blob service has CORS rules (azure-powershell #23411).
        return invalid_parameter(f"Requested value '{methods}' was not found.", "backupStorageAccount")

    def _new_operation(
        self, kind: str, svc: dict[str, Any], params: BackupRestoreParameters, api_version: str, principal: str
    ) -> dict[str, Any]:
        injected = self.take_fault(("op_failure",), kind, svc["name"])
        now = self.clock.now()
        op_id = new_operation_id(svc["location"], svc["name"])
        return {
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

    def complete_due(self, service: str | None = None) -> int:
        """Finish every running operation whose time has come (only ``service``'s, if given).

        Returns how many finished, by this call or by the thread it waited for. Many due operations
        are finished in parallel by the completion workers, this thread helping.
        """
        now = self.clock.now()
        with self._due_lock:
            if now < self._next_due:
                return 0
        due = self.store.due_operations(now, service)
        if len(due) > 1:
            self._dispatch(due)
            due.reverse()  # the workers take them oldest first; this thread starts from the other end
        finished = sum(self._complete_one(op_id, wait=True) for op_id in due)
        self._refresh_next_due()
        return finished

    def _refresh_next_due(self) -> None:
        with self._due_lock:
            upcoming = self.store.next_due()
            self._next_due = math.inf if upcoming is None else upcoming

    def _dispatch(self, op_ids: list[str]) -> None:
        with self._guard:
            fresh = [op_id for op_id in op_ids if op_id not in self._queued]
            self._queued.update(fresh)
            while len(self._workers) < COMPLETION_WORKERS:
                worker = threading.Thread(
                    target=self._work, name=f"op-complete-{len(self._workers)}", daemon=True
                )
                worker.start()
                self._workers.append(worker)
        for op_id in fresh:
            self._queue.put(op_id)

    def _work(self) -> None:
        while True:
            op_id = self._queue.get()
            if op_id is None:
                return
            with self._guard:
                self._queued.discard(op_id)
            try:
                self._complete_one(op_id, wait=False)
            except Exception:
                logger.exception("completing %s failed", op_id)

    def _complete_one(self, op_id: str, *, wait: bool) -> bool:
        """Finish ``op_id`` if it is due, once: if another thread is at it, wait for it (or skip).

        True when the operation is no longer running afterwards.
        """
        with self._guard:
            claim = self._claims.get(op_id)
            mine = claim is None
            if claim is None:
                claim = self._claims[op_id] = _Claim()
        if not mine:
            if wait:
                claim.done.wait()
            return claim.finished
        try:
            with self._state.shared():
                claim.finished = self._finish(op_id)
        finally:
            with self._guard:
                del self._claims[op_id]
            claim.done.set()
        return claim.finished

    def _finish(self, op_id: str) -> bool:
        op = self.store.operation(op_id)
        if op is None or op["status"] != "Running":
            return True
        now = self.clock.now()
        if now < op["startedAt"] + op["duration"]:
            return False
        try:
            self._complete(op, now)
        except Exception as exc:
            # An emulator bug must fail this operation, not every later request that retries it.
            logger.exception("completing %s failed", op["id"])
            with self._service_lock(op["service"]):
                self._abandon(op, now, exc)
        return True

    def _abandon(self, op: dict[str, Any], now: float, exc: Exception) -> None:
        svc = self.store.service(op["service"])
        op |= {"status": "Failed", "completedAt": now}
        op["error"] = {
            "status": 500,
            "code": "InternalServerError",
            "message": f"The emulator failed to complete the operation ({type(exc).__name__}); see its log.",
        }
        with self.store.transaction():
            if svc is not None and svc.get("activeOperation") == op["id"]:
                svc |= {"activeOperation": None, "provisioningState": "Succeeded", "targetProvisioningState": ""}
                svc["etagCounter"] += 1
                self.store.put_service(svc)
            self.store.put_operation(op)

    def _complete(self, op: dict[str, Any], now: float) -> None:
        # The storage half first, with no lock held: the snapshot is the configuration as of now.
        svc = self.store.service(op["service"])
        failure: OperationFailedError | None = None
        snapshot: dict[str, Any] | None = None
        restored: list[Entity] | None = None
        account: dict[str, Any] = {}
        if svc is not None:
            injected = op.get("injectedFailure")
            try:
                if injected is not None:
                    default_code = "BackupFailed" if op["kind"] == "backup" else "RestoreFailed"
                    raise OperationFailedError(
                        injected.get("code") or default_code,
                        injected.get("message") or f"Injected {op['kind']} failure.",
                        int(injected.get("status") or 400),
                    )
                if op["kind"] in self.completers:
                    raise _CustomKind
                account = storage_account_for(op, svc, self.store.get("storageAccounts", {}))
                unreachable = self.storage_unreachable(account)
                if unreachable is not None:
                    verb = "Backup" if op["kind"] == "backup" else "Cannot restore"
                    raise OperationFailedError(
                        "BackupFailed" if op["kind"] == "backup" else "RestoreFailed",
                        f"{verb}: storage account '{account['name']}' could not be reached ({unreachable}).",
                    )
                if op["kind"] == "backup":
                    write_backup(
                        self.blobs, op, svc, account, now=now,
                        document=self.configuration_document(svc["name"], backup=True),
                    )
                else:
                    snapshot = read_snapshot(self.blobs, op, account)
                    restored = self._restored_entities(svc, snapshot, op, account)
            except OperationFailedError as exc:
                failure = exc
            except _CustomKind:
                pass
        # Then the service half, under its lock, on the service as it is now.
        with self._service_lock(op["service"]):
            svc = self.store.service(op["service"])
            if svc is None:  # removed by an admin reset; nothing left to finish
                op |= {"status": "Failed", "completedAt": now}
                op["error"] = {"status": 404, "code": "ResourceNotFound", "message": "The service no longer exists."}
                self.store.put_operation(op)
                return
            if failure is None and snapshot is not None:
                try:
                    apply_snapshot(svc, snapshot, op, account, now)
                except OperationFailedError as exc:
                    failure = exc
                    restored = None
            if failure is None and op["kind"] in self.completers:
                try:
                    self.completers[op["kind"]](svc, op, now)
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
                if failure is None and restored is not None:
                    # Restore replaces the configuration (hostnames, identity, SKU stay: DOC); the developer
                    # portal's content, which backups do not carry, stays as it was.
                    kept = self.store.entities_of_kinds(svc["name"], PORTAL_CONTENT_KINDS)
                    self.store.delete_service_entities(svc["name"])
                    self.store.put_entities(svc["name"], [*restored, *kept])
                self.store.put_service(svc)
                self.store.put_operation(op)
        logger.info("%s %s of %s: %s", op["kind"], op["id"], op["service"], op["status"])

    def _restored_entities(
        self, svc: dict[str, Any], snapshot: dict[str, Any], op: dict[str, Any], account: dict[str, Any]
    ) -> list[Entity]:
        """The backup's configuration built for the target (no lock: nothing is written yet)."""
        try:
            return self.build_configuration(svc, snapshot["configuration"], mode="import")
        except configuration.ConfigurationError as exc:
            params = op["parameters"]
            raise OperationFailedError(
                "RestoreFailed",
                f"Cannot restore: backup '{params['backupName']}' in container '{params['containerName']}' of storage "
                f"account '{account.get('name')}' is not a valid API Management backup ({exc}).",
            ) from exc

    # -- views ---------------------------------------------------------------------------------
    def service_view(self, name: str) -> dict[str, Any] | None:
        """Everything about a service, for ``GET /_emulator/services/{name}``."""
        svc = self.store.service(name)
        if svc is None:
            return None
        return svc | {
            "etag": etag_for(svc["etagCounter"]),
            "resource": render_service(svc),
            "configuration": self.configuration_document(svc["name"]),
        }


class _CustomKind(Exception):
    """An operation of a kind an extension finishes (Engine.completers): no storage half."""


def _non_negative(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0")
    return float(value)
