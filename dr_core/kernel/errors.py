"""apim-dr's errors: one root, one table to HTTP statuses and CLI exit codes, and ARM's errors with remediation.

- :class:`DrError` is the root of every error apim-dr raises on purpose. Each subclass is a
  kind of failure (bad input, not found, conflict, configuration, Azure unreachable, ARM
  refused); :func:`http_status` and :func:`exit_code` map them, in one table.
- :class:`ArmError` is what ARM answered (code, message, status, ``Retry-After``).
  Every Failed or TimedOut job carries it plus a remediation hint from
  :func:`remediation_for`, so an operator at 3 a.m. reads what to do, not just "BadRequest".
- The same table says what kind of failure each error is (:class:`FailureKind`, :func:`failure_kind`):
  "not now" (a refused call to repeat later), transient (a new attempt may succeed) or permanent
  (someone must fix something first). :data:`RETRYABLE_CODES` is derived from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, NamedTuple

from dr_core.kernel.wire import JsonObject

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "RETRYABLE_CODES",
    "ArmCallError",
    "ArmError",
    "AzureUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "DrError",
    "FailureKind",
    "InvalidRequestError",
    "NoAnswerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "exit_code",
    "failure_kind",
    "http_status",
    "parse_arm_error",
    "remediation_for",
]

class FailureKind(StrEnum):
    """What an error means for what comes next, from the one table below (:func:`failure_kind`)."""

    NOT_NOW = "not-now"  # ARM refused the call for now (busy, throttled): the same call later, nothing ran
    TRANSIENT = "transient"  # a fault a new attempt may not meet (internal error, time-out, "try again later")
    PERMANENT = "permanent"  # fails the same way every time until someone fixes something (identity, tier, ...)


_MAX_MESSAGE = 2000

# CLI exit codes (documented in README and `apim-dr --help`).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4, 5, 6
EXIT_INTERRUPTED = 130


class DrError(Exception):
    """Root of apim-dr's own errors: a code, a message naming what is wrong, and what to do.

    ``retry_after`` (seconds) is set when the cause says when to try again (ARM's
    ``Retry-After``); ``fields`` names each bad input field. Which HTTP status and CLI exit
    code an error maps to is decided in one table (:func:`http_status`, :func:`exit_code`).
    """

    code: ClassVar[str] = "InternalError"

    def __init__(self, message: str, *, code: str | None = None, remediation: str | None = None,
                 retry_after: float | None = None, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or type(self).code
        self.remediation = remediation
        self.retry_after = retry_after
        self.fields = dict(fields or {})

    def to_json(self) -> JsonObject:
        body: JsonObject = {"code": self.error_code, "message": self.message}
        if self.remediation:
            body["remediation"] = self.remediation
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class InvalidRequestError(DrError):
    """Malformed input: a request body, a query parameter, a CLI argument. ``fields`` names each bad one."""

    code = "BadRequest"


class PayloadTooLargeError(InvalidRequestError):
    code = "PayloadTooLarge"


class NotFoundError(DrError):
    """An instance, job or backup that does not exist (or is not protected)."""

    code = "NotFound"


class ConflictError(DrError):
    """The request collides with the current state (another writer, a running job)."""

    code = "Conflict"


class ConfigurationError(DrError):
    """The app's settings cannot work; the message names every bad setting."""

    code = "ConfigurationError"


class AzureUnavailableError(DrError):
    """Azure could not be reached or refused our identity: no connection, DNS, TLS, token failure, 5xx."""

    code = "AzureUnavailable"


class NoAnswerError(AzureUnavailableError):
    """A write went out but no answer came back: Azure may have accepted it (never send it again blindly)."""

    code = "NoResponse"


@dataclass(frozen=True)
class ArmError:
    """An error ARM returned (or one apim-dr derived, such as ``TimedOut``)."""

    code: str
    message: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        """A call that may be repeated: not now, or transient (:func:`failure_kind`)."""
        return self.kind is not FailureKind.PERMANENT

    @property
    def kind(self) -> FailureKind:
        return failure_kind(self.code, self.message, self.status)

    @property
    def remediation(self) -> str:
        return remediation_for(self.code, self.message)


class ArmCallError(DrError):
    """ARM refused a call; ``error`` holds its code, message, HTTP status and ``Retry-After``."""

    code = "ArmError"

    def __init__(self, error: ArmError) -> None:
        super().__init__(f"({error.code}) {error.message}", code=error.code, remediation=error.remediation,
                         retry_after=error.retry_after)
        self.error = error


# The one table from error class to HTTP status and CLI exit code; the most specific class first.
_STATUS_AND_EXIT: tuple[tuple[type[DrError], int, int], ...] = (
    (PayloadTooLargeError, 413, EXIT_USAGE),
    (InvalidRequestError, 400, EXIT_USAGE),
    (NotFoundError, 404, EXIT_NOT_FOUND),
    (ConflictError, 409, EXIT_FAILED),
    (ConfigurationError, 503, EXIT_CONFIG),
    (AzureUnavailableError, 503, EXIT_UNAVAILABLE),
    (ArmCallError, 502, EXIT_UNAVAILABLE),
    (DrError, 500, EXIT_FAILED),
)


def http_status(error: DrError) -> int:
    return next(status for cls, status, _ in _STATUS_AND_EXIT if isinstance(error, cls))


def exit_code(error: DrError) -> int:
    return next(code for cls, _, code in _STATUS_AND_EXIT if isinstance(error, cls))


def parse_arm_error(status: int, body: bytes | str | None, *, retry_after: float | None = None) -> ArmError:
    """Read ARM's ``{"error": {"code", "message"}}`` (APIM adds ``details``/``innerError``: null)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else (body or "")
    code, message = _default_code(status), text.strip()[:_MAX_MESSAGE] or f"HTTP {status} without a body"
    try:
        data = json.loads(text) if text else None
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        error = data.get("error") if isinstance(data.get("error"), dict) else data
        if isinstance(error, dict):
            code = str(error.get("code") or code)[:200]
            message = str(error.get("message") or message)[:_MAX_MESSAGE]
    return ArmError(code=code, message=message, status=status, retry_after=retry_after)


def _default_code(status: int) -> str:
    return {
        400: "BadRequest", 401: "AuthenticationFailed", 403: "AuthorizationFailed", 404: "NotFound",
        409: "Conflict", 429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
        503: "ServiceUnavailable", 504: "GatewayTimeout",
    }.get(status, f"Http{status}")


class _Rule(NamedTuple):
    code: str
    pattern: re.Pattern[str] | None
    advice: str
    kind: FailureKind = FailureKind.PERMANENT


# What APIM says when its own operation failed for a passing reason (no SLA; it sometimes fails internally).
_TRANSIENT_MESSAGE = re.compile(r"try again|temporar|timed? ?out|internal (server )?error|unexpected|transient|"
                                r"unavailable", re.I)
_TRANSIENT_ADVICE = (
    "A transient failure in Azure (APIM or Azure Resource Manager failed internally). apim-dr gives a backup new "
    "attempts, with backoff, up to its maxAttempts (APIM_DR_BACKUP_MAX_ATTEMPTS) within the job's deadline; if "
    "every attempt failed, check Azure status and the instance's activity log, then start a new backup. A restore "
    "is never repeated on its own: check the target's configuration, then start the restore again.")

# (code, regex on the message or None, remediation[, kind]). First match wins: specific before generic.
# The kind (FailureKind) is PERMANENT unless a row says otherwise; a code no row names is classified by
# its HTTP status (failure_kind). One table for what to do and for whether to try again.
_REMEDIATIONS: tuple[tuple[str, re.Pattern[str] | None, str] | tuple[str, re.Pattern[str] | None, str, FailureKind],
                     ...] = (
    ("RestoreFailed", re.compile(r"SKU", re.I),
     "The target's pricing tier differs from the backup's. Restore into an instance of the backup's tier, "
     "or scale the target to that tier first; apim-dr's preflight refuses such restores."),
    ("RestoreFailed", re.compile(r"expired", re.I),
     "Backups expire after 30 days and cannot be restored afterwards. Pick a newer backup "
     "(GET /api/backups?service=<name>) or take a new one."),
    ("RestoreFailed", re.compile(r"not found|does not exist|missing", re.I),
     "The backup blob was not found. Check the container and blob name in the backup catalog."),
    ("InvalidParameters", re.compile(r"backupStorageAccount", re.I),
     "CORS is enabled on the backup account's Blob service, which APIM backup cannot handle. Remove the CORS "
     "rules from the Blob service of the backup storage account (Azure portal: Resource sharing (CORS) > Blob "
     "service), then retry."),
    ("InvalidParameters", re.compile(r"managed identity|identity", re.I),
     "The instance lacks the managed identity the storage access type needs. Enable it on the APIM instance "
     "(system-assigned, or the user-assigned one named by APIM_DR_STORAGE_IDENTITY_CLIENT_ID), grant it 'Storage "
     "Blob Data Contributor' on the backup account, or change APIM_DR_STORAGE_ACCESS_TYPE for this instance."),
    ("InvalidParameters", re.compile(r"ContainerName", re.I),
     "The backup container name is invalid. Use 3-63 lowercase letters, digits and single hyphens "
     "(APIM_DR_BACKUP_CONTAINER or the instance's container)."),
    ("InvalidParameters", None,
     "ARM rejected the backup/restore parameters. Check APIM_DR_BACKUP_STORAGE_ACCOUNT, the container and the "
     "storage access type settings."),
    ("MethodNotAllowedInPricingTier", None,
     "Backup and restore exist only in the Developer, Basic, Standard and Premium (classic) tiers. Protect this "
     "instance with configuration snapshots instead: set its recovery to 'snapshot' (or 'auto') in "
     "APIM_DR_INSTANCES."),
    ("ContainerNotFound", None,
     "Create the container in the backup account (infra/ creates the default container and every container an "
     "instance names: redeploy, or `az storage container create`), then take the snapshot again."),
    ("ServiceLocked", None,
     "Another operation (update, scale, backup or restore) is running on the instance. apim-dr retries "
     "until the job's deadline; if this persists, check the instance's activity log.", FailureKind.NOT_NOW),
    ("SubscriptionRequestsThrottled", None,
     "Azure Resource Manager throttled the requests of this subscription. apim-dr retries after Retry-After; "
     "spread the schedule if it happens every run.", FailureKind.NOT_NOW),
    ("AuthorizationFailed", re.compile(r"service/(apis|products|namedValues|backends|loggers|diagnostics|policies|"
                                       r"policyFragments|tags|groups|certificates|apiVersionSets|schemas)", re.I),
     "The Function App's identity may not read this part of the instance's configuration (configuration "
     "snapshots and restore drills read it item by item). Assign it the 'APIM DR Operator' custom role, which "
     "holds exactly those reads, on the instance or its resource group (see docs/deploy.md)."),
    ("AuthorizationFailed", None,
     "The Function App's identity lacks permission. Assign it the 'APIM DR Operator' custom role "
     "(service/read, service/operationresults/read, backup/action, restore/action) on the instance or its resource "
     "group (see docs/deploy.md)."),
    ("AuthenticationFailed", None,
     "Authentication to Azure Resource Manager failed. Check the Function App's managed identity and "
     "AZURE_CLIENT_ID."),
    ("InvalidAuthenticationToken", None,
     "The token sent to Azure Resource Manager was rejected. Check AZURE_CLIENT_ID and APIM_DR_ARM_ENDPOINT."),
    ("ExpiredAuthenticationToken", None, "The token had expired; the next attempt gets a new one. Retry.",
     FailureKind.TRANSIENT),
    ("ResourceNotFound", None,
     "The APIM instance does not exist (deleted, renamed or a typo). Fix its resource ID in APIM_DR_INSTANCES."),
    ("ResourceGroupNotFound", None,
     "The resource group does not exist. Fix the instance's resource ID in APIM_DR_INSTANCES."),
    ("SubscriptionNotFound", None, "The subscription does not exist or the identity cannot see it."),
    ("StorageAccessDenied", None,
     "APIM could not reach the backup storage account. Grant the APIM instance's identity (system- or "
     "user-assigned, per APIM_DR_STORAGE_ACCESS_TYPE) 'Storage Blob Data Contributor' on the backup account, "
     "and allow trusted Azure services through its firewall."),
    ("BackupFailed", re.compile(r"identity|role|authoriz|permission|forbidden|access", re.I),
     "APIM could not write to the backup storage account. Grant the APIM instance's identity 'Storage Blob Data "
     "Contributor' on the backup account (and for a user-assigned identity, check its client ID), and allow "
     "trusted Azure services through the account's firewall."),
    ("BackupFailed", re.compile(r"key", re.I),
     "The storage account key was rejected. Update APIM_DR_BACKUP_STORAGE_KEY (Key Vault secret) after a key "
     "rotation, or switch to a managed identity."),
    ("RestoreFailed", re.compile(r"identity|role|authoriz|permission|forbidden|access|key", re.I),
     "The target APIM instance could not read the backup. Give the target's identity 'Storage Blob Data "
     "Contributor' on the backup account (managed identities are not part of a backup)."),
    ("BackupFailed", _TRANSIENT_MESSAGE, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("RestoreFailed", _TRANSIENT_MESSAGE, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("InternalServerError", None, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("ServiceUnavailable", None, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("GatewayTimeout", None, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("BadGateway", None, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("OperationTimedOut", None, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("RequestTimeout", None, _TRANSIENT_ADVICE, FailureKind.TRANSIENT),
    ("TooManyRequests", None,
     "Azure Resource Manager throttled the requests. apim-dr retries after Retry-After.", FailureKind.NOT_NOW),
    ("RetryableErrorDueToAnotherOperation", None,
     "Another operation is running on the instance. apim-dr retries until the job's deadline.", FailureKind.NOT_NOW),
    ("TimedOut", None,
     "The operation did not finish before its deadline. Check the instance's provisioning state and activity "
     "log in the portal; if it is still Updating, wait and start a new job afterwards."),
    ("RestoreOutcomeUnknown", None,
     "The restore may have run. Check the target's activity log in the Azure portal (operation 'Restore API "
     "Management Service') and its configuration; if it did not run, start the restore again "
     "(POST /api/restores or `apim-dr restore`)."),
    ("OperationNotFound", None,
     "ARM no longer knows the operation. apim-dr checks the instance and the backup blob; start a new job if "
     "no backup was written."),
)
_RULES = tuple(_Rule(*row) for row in _REMEDIATIONS)
# Codes that mean "not now" or "transient" whatever the message: ARM's answers a job waits out or tries again.
RETRYABLE_CODES = frozenset(rule.code for rule in _RULES if rule.pattern is None and rule.kind is not
                            FailureKind.PERMANENT)
_GENERIC = (
    "Check the instance's activity log in the Azure portal for details, then start a new job "
    "(POST /api/backups or `apim-dr backup start`)."
)


def _rule(code: str, message: str) -> _Rule | None:
    for rule in _RULES:
        if rule.code.lower() == (code or "").lower() and (rule.pattern is None or rule.pattern.search(message or "")):
            return rule
    return None


def remediation_for(code: str, message: str = "") -> str:
    rule = _rule(code, message)
    return rule.advice if rule is not None else _GENERIC


def failure_kind(code: str, message: str = "", status: int | None = None) -> FailureKind:
    """Whether ``code`` (with ``message``) means not now, transient or permanent: the table's row, else the status.

    A code no row names is "not now" for a 429, transient for a 5xx (a gateway or ARM itself failed) and
    permanent otherwise (a 4xx names something wrong with the request, which a new attempt repeats).
    """
    rule = _rule(code, message)
    if rule is not None:
        return rule.kind
    if status == 429:
        return FailureKind.NOT_NOW
    if status is not None and status >= 500:
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT
