"""Typed, validated app settings, and the schedules of the timers.

Every setting the code reads is declared once in :data:`SETTINGS`: its name, its default (the
only place a default is written in the code) and its meaning. ``docs/configuration.md``,
``local.settings.example.json`` and ``infra/`` are checked against this table by the tests, by
name and by default value, so they cannot drift apart. The timers' schedules are here too:
``BACKUP_SCHEDULE`` (a setting) and the five fixed in code (:data:`TIMER_SCHEDULES`).

Loading collects every problem before raising, so an operator fixes all of them in one
round; one bad entry in ``APIM_DR_INSTANCES`` is reported on its own and does not stop
the other instances from being backed up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from dr_core.kernel.wire import JsonObject

from .errors import ConfigurationError
from .ids import ApimResourceId, InvalidResourceIdError
from .schedule import InvalidScheduleError, Ncrontab

__all__ = [
    "COPY_SCHEDULE",
    "DRILL_SCHEDULE",
    "JOBS_TABLE",
    "POLL_QUEUE",
    "RETENTION_SCHEDULE",
    "RPO_SCHEDULE",
    "SETTINGS",
    "STANDBY_SYNC_SCHEDULE",
    "TIMER_SCHEDULES",
    "WATCHDOG_SCHEDULE",
    "WORK_QUEUE",
    "AppStorage",
    "Posture",
    "ProtectedInstance",
    "Recovery",
    "Secret",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "StorageAccessType",
    "default_of",
    "load_settings",
]

# Fixed resource names in the app's own storage account (also created by infra/).
JOBS_TABLE = "apimdrjobs"
WORK_QUEUE = "apim-dr-jobs"
# Polls have their own queue (and function), so a backlog of starts never delays a poll.
POLL_QUEUE = "apim-dr-polls"

# The timers whose schedules are fixed in code (no app setting), by function name; all UTC, NCRONTAB with seconds.
# Backups follow BACKUP_SCHEDULE (a setting, default in SETTINGS). The hourly ones sit at minutes away from
# the watchdog's and from each other.
WATCHDOG_SCHEDULE = "0 */5 * * * *"  # requeue_stalled_jobs: a lost step costs minutes, not hours
RPO_SCHEDULE = "0 */15 * * * *"  # check_rpo: a breach is noticed within a quarter of an hour
RETENTION_SCHEDULE = "0 30 3 * * *"  # prune_backups: after the default 02:00 backups; ages move by days
STANDBY_SYNC_SCHEDULE = "0 20 * * * *"  # sync_standbys: catches up on what a crash skipped
DRILL_SCHEDULE = "0 40 * * * *"  # run_drills: starts the drills that are due, finishes missed ones
COPY_SCHEDULE = "0 50 * * * *"  # copy_backups: copies what the follower missed to the copy account
TIMER_SCHEDULES = {
    "requeue_stalled_jobs": WATCHDOG_SCHEDULE,
    "check_rpo": RPO_SCHEDULE,
    "prune_backups": RETENTION_SCHEDULE,
    "sync_standbys": STANDBY_SYNC_SCHEDULE,
    "run_drills": DRILL_SCHEDULE,
    "copy_backups": COPY_SCHEDULE,
}
# Bounds against absurd values that would silently disable the safety net.
# Sized for fleets of tens of thousands (a resource ID is about 130 characters); larger fleets are
# better served by tag discovery than by one app setting.
_MAX_INSTANCES_JSON = 8_000_000
_MAX_INSTANCES = 50_000
_MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    default: str | None = None
    secret: bool = False
    required: bool = False
    minimum: int | None = None  # whole-number settings: their allowed range
    maximum: int | None = None


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("AzureWebJobsStorage", "The app's own storage (jobs table, work queue). A connection string "
                "locally (`UseDevelopmentStorage=true` or an Azurite string); in Azure use the identity-based "
                "`AzureWebJobsStorage__*` settings instead.", secret=True),
    SettingSpec("AzureWebJobsStorage__queueServiceUri",
                "Identity-based connection: queue endpoint of the app's storage."),
    SettingSpec("AzureWebJobsStorage__tableServiceUri",
                "Identity-based connection: table endpoint of the app's storage."),
    SettingSpec("AzureWebJobsStorage__blobServiceUri",
                "Identity-based connection: blob endpoint of the app's storage."),
    SettingSpec("AzureWebJobsStorage__credential", "`managedidentity` to use the identity named by `__clientId`."),
    SettingSpec("AzureWebJobsStorage__clientId",
                "Client ID of the Function App's user-assigned identity for its storage."),
    SettingSpec("AZURE_CLIENT_ID", "Client ID of the Function App's user-assigned identity (ARM and backup storage). "
                "Empty: system-assigned identity / developer credentials."),
    SettingSpec("BACKUP_SCHEDULE", "NCRONTAB of scheduled backups as the Functions timer reads it: five fields "
                "(minute first) or six (seconds first), UTC.", default="0 0 2 * * *"),
    SettingSpec("APIM_DR_INSTANCES", "JSON list of protected instances: APIM resource IDs, or objects "
                "`{\"resourceId\", \"container\", \"accessType\", \"clientId\", \"alias\", \"standby\", "
                "\"standbySync\", \"drillTarget\", \"drillEveryDays\", \"rpoHours\", \"keepLast\", \"maxAgeDays\", "
                "\"maxAttempts\", \"keepDaily\", \"keepWeekly\", \"keepMonthly\", \"copy\"}`.",
                default="[]"),
    SettingSpec("APIM_DR_DISCOVERY_SUBSCRIPTIONS", "Comma-separated subscription IDs searched for tagged instances.",
                default=""),
    SettingSpec("APIM_DR_DISCOVERY_TAG", "Tag that marks an instance for backup in discovery, `name=value`.",
                default="apim-dr:backup=true"),
    SettingSpec("APIM_DR_BACKUP_STORAGE_ACCOUNT", "Name of the storage account that holds backups.", required=True),
    SettingSpec("APIM_DR_BACKUP_CONTAINER", "Default blob container for backups.", default="apim-backups"),
    SettingSpec("APIM_DR_BACKUP_BLOB_ENDPOINT", "Blob endpoint of the backup account as the app reaches it; "
                "default `https://{account}.blob.core.windows.net` (override for sovereign clouds or Azurite)."),
    SettingSpec("APIM_DR_STORAGE_ACCESS_TYPE", "How APIM reaches the backup account: `SystemAssignedManagedIdentity`, "
                "`UserAssignedManagedIdentity` or `AccessKey`.", default="SystemAssignedManagedIdentity"),
    SettingSpec("APIM_DR_STORAGE_IDENTITY_CLIENT_ID", "Client ID of APIM's user-assigned identity "
                "(for `UserAssignedManagedIdentity`)."),
    SettingSpec("APIM_DR_BACKUP_STORAGE_KEY", "Backup account key for `AccessKey`; a Key Vault reference in Azure. "
                "Never logged.", secret=True),
    SettingSpec("APIM_DR_ARM_ENDPOINT", "Azure Resource Manager endpoint.", default="https://management.azure.com"),
    SettingSpec("APIM_DR_WEBHOOK_URL", "Webhook that receives failure and time-out announcements and RPO breaches "
                "and recoveries (JSON; Teams and Slack compatible). Empty: log only.", secret=True),
    SettingSpec("APIM_DR_BACKUP_TIMEOUT_MINUTES", "A backup still running after this becomes `TimedOut`.",
                default="120", minimum=5, maximum=24 * 60),
    SettingSpec("APIM_DR_RESTORE_TIMEOUT_MINUTES", "A restore still running after this becomes `TimedOut`.",
                default="180", minimum=5, maximum=24 * 60),
    SettingSpec("APIM_DR_MAX_POLL_DELAY_SECONDS", "Upper bound on the delay between two polls, whatever "
                "`Retry-After` says.", default="300", minimum=1, maximum=3600),
    SettingSpec("APIM_DR_EXPIRY_MARGIN_HOURS", "Restore preflight refuses a backup that expires within this many "
                "hours (a restore can take longer than what is left).", default="24", minimum=0, maximum=24 * 29),
    SettingSpec("APIM_DR_RPO_HOURS", "RPO target: the newest restorable backup of an instance may be this old "
                "before the instance is `breached` (`at-risk` from 80 %). Per instance: `rpoHours`.", default="26",
                minimum=1, maximum=24 * 29),
    SettingSpec("APIM_DR_RETENTION_KEEP_LAST", "Retention never leaves fewer than this many backups of an instance. "
                "Per instance: `keepLast`.", default="3", minimum=1, maximum=1000),
    SettingSpec("APIM_DR_RETENTION_MAX_AGE_DAYS", "Retention deletes backups older than this (APIM restores nothing "
                "older than 30 days; the default adds a 7-day grace). Never the newest restorable one. Per instance: "
                "`maxAgeDays`.", default="37", minimum=1, maximum=3650),
    SettingSpec("APIM_DR_RETENTION_KEEP_DAILY", "Grandfather-father-son retention: besides the rules above, keep the "
                "newest backup of each of the last this many UTC days (today included). 0: off. Per instance: "
                "`keepDaily`.", default="0", minimum=0, maximum=3650),
    SettingSpec("APIM_DR_RETENTION_KEEP_WEEKLY", "Keep the newest backup of each of the last this many ISO weeks "
                "(Monday to Sunday, UTC). 0: off. Per instance: `keepWeekly`.", default="0", minimum=0, maximum=520),
    SettingSpec("APIM_DR_RETENTION_KEEP_MONTHLY", "Keep the newest backup of each of the last this many calendar "
                "months (UTC). 0: off. Native backups kept this way are history only: APIM restores none older than "
                "30 days. Per instance: `keepMonthly`.", default="0", minimum=0, maximum=120),
    SettingSpec("APIM_DR_COPY_STORAGE_ACCOUNT", "Second storage account, in another region, that every succeeded "
                "backup (with its sidecar documents) is copied to, server-side, with the app's identity. Empty: no "
                "copies. Per instance: `copy` (default true when this is set)."),
    SettingSpec("APIM_DR_COPY_BLOB_ENDPOINT", "Blob endpoint of the copy account as the app reaches it; default "
                "`https://{account}.blob.core.windows.net` (override for sovereign clouds or Azurite)."),
    SettingSpec("APIM_DR_DRILL_EVERY_DAYS", "How often an instance with a `drillTarget` gets a restore drill. Per "
                "instance: `drillEveryDays`.", default="7", minimum=1, maximum=365),
    SettingSpec("APIM_DR_RECOVERY", "Which recovery points protect an instance: `native` (APIM's backup), "
                "`snapshot` (configuration snapshots, every tier), `both`, or `auto`: both where the tier has "
                "backup (Developer, Basic, Standard, Premium), snapshots only elsewhere (Consumption, v2). "
                "Per instance: `recovery`.", default="auto"),
    SettingSpec("APIM_DR_SNAPSHOT_TIMEOUT_MINUTES", "A configuration snapshot still reading after this becomes "
                "`TimedOut` (an instance of 1,000 APIs takes minutes at ARM's read rate).", default="120",
                minimum=5, maximum=24 * 60),
    SettingSpec("APIM_DR_SNAPSHOT_READS_PER_SECOND", "ARM reads per second that snapshots may spend per "
                "subscription, shared by every host instance (ARM refills 25 per second per principal; the rest "
                "is left for polls, drills and people).", default="20", minimum=1, maximum=25),
    SettingSpec("APIM_DR_START_LEASE_SECONDS", "How long a job may sit in `Starting` before another worker "
                "assumes the first one died and checks the instance (never re-sending a backup that runs). "
                "Keep it above host.json `functionTimeout`.", default="360", minimum=1, maximum=3600),
    SettingSpec("APIM_DR_BACKUP_MAX_ATTEMPTS", "How many operations a backup job may run: a backup whose operation "
                "failed for a transient reason (an internal error, a time-out, \"try again later\") gets new attempts "
                "up to this many, within its deadline; a permanent failure ends it at once. Per instance: "
                "`maxAttempts`. Restores are never repeated on their own.", default="3", minimum=1, maximum=10),
    SettingSpec("APIM_DR_ATTEMPT_BACKOFF_SECONDS", "The wait before a backup's second attempt; it doubles for each "
                "further attempt (at most an hour), and no attempt starts past the job's deadline.", default="120",
                minimum=1, maximum=3600),
)
_SPECS = {s.name: s for s in SETTINGS}


def default_of(name: str) -> str:
    """The default of the setting ``name`` (as its text), from :data:`SETTINGS`."""
    default = _SPECS[name].default
    assert default is not None, f"{name} has no default"
    return default


_default = default_of


class StorageAccessType(StrEnum):
    ACCESS_KEY = "AccessKey"
    SYSTEM_ASSIGNED = "SystemAssignedManagedIdentity"
    USER_ASSIGNED = "UserAssignedManagedIdentity"


class Secret:
    """A value that never shows itself in logs, reprs or JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Recovery(StrEnum):
    """Which recovery points an instance gets (``recovery``; default ``APIM_DR_RECOVERY``)."""

    AUTO = "auto"  # both where the tier has APIM's backup, snapshots only where it has not
    NATIVE = "native"  # APIM's backup only
    SNAPSHOT = "snapshot"  # configuration snapshots only
    BOTH = "both"

    @property
    def snapshots(self) -> bool:
        return self is not Recovery.NATIVE

    @property
    def native_backups(self) -> bool:
        """Native backups are planned (for AUTO: tried; a tier without backup ends them quietly, see jobs)."""
        return self is not Recovery.SNAPSHOT


@dataclass(frozen=True)
class Posture:
    """What an instance's protection promises: RPO target, retention, standby sync, restore drills.

    The defaults are the settings' (``APIM_DR_RPO_HOURS``, ...), as :data:`SETTINGS` declares them.
    """

    rpo_hours: int = int(default_of("APIM_DR_RPO_HOURS"))
    keep_last: int = int(default_of("APIM_DR_RETENTION_KEEP_LAST"))
    max_age_days: int = int(default_of("APIM_DR_RETENTION_MAX_AGE_DAYS"))
    standby_sync: bool = False
    drill_target: ApimResourceId | None = None
    drill_every_days: int = int(default_of("APIM_DR_DRILL_EVERY_DAYS"))
    max_attempts: int = int(default_of("APIM_DR_BACKUP_MAX_ATTEMPTS"))
    # Grandfather-father-son retention: the newest backup of each of the last N days, weeks, months (0: off).
    keep_daily: int = int(default_of("APIM_DR_RETENTION_KEEP_DAILY"))
    keep_weekly: int = int(default_of("APIM_DR_RETENTION_KEEP_WEEKLY"))
    keep_monthly: int = int(default_of("APIM_DR_RETENTION_KEEP_MONTHLY"))
    # Copy every succeeded backup to the copy account (APIM_DR_COPY_STORAGE_ACCOUNT).
    copy: bool = False
    recovery: Recovery = Recovery.AUTO  # APIM_DR_RECOVERY's default (checked by tests/unit/kernel)


@dataclass(frozen=True)
class ProtectedInstance:
    resource_id: ApimResourceId
    container: str
    access_type: StorageAccessType
    client_id: str | None = None
    alias: str | None = None
    standby: ApimResourceId | None = None
    posture: Posture = Posture()

    @property
    def name(self) -> str:
        return self.resource_id.service_name


@dataclass(frozen=True)
class AppStorage:
    """The app's own storage: a connection string, or service URIs reached with an identity."""

    connection_string: Secret | None = None
    queue_uri: str | None = None
    table_uri: str | None = None
    blob_uri: str | None = None
    client_id: str | None = None


class SettingsError(ConfigurationError):
    """Settings that cannot work. ``problems`` holds one line per bad setting, each naming it."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the app's settings are invalid: " + "; ".join(problems),
                         remediation="Fix the named app settings (docs/configuration.md) and restart.")

    def __str__(self) -> str:
        return "invalid app settings:\n  - " + "\n  - ".join(self.problems)


@dataclass(frozen=True)
class Settings:
    app_storage: AppStorage
    backup_account: str
    backup_container: str
    backup_blob_endpoint: str
    access_type: StorageAccessType
    identity_client_id: str | None
    backup_storage_key: Secret | None
    schedule: Ncrontab
    arm_endpoint: str
    azure_client_id: str | None
    webhook_url: Secret | None
    backup_timeout_minutes: int
    restore_timeout_minutes: int
    max_poll_delay_seconds: int
    start_lease_seconds: int
    expiry_margin_hours: int
    attempt_backoff_seconds: int
    snapshot_timeout_minutes: int
    snapshot_reads_per_second: int
    posture: Posture
    instances: tuple[ProtectedInstance, ...]
    instance_errors: tuple[str, ...]
    discovery_subscriptions: tuple[str, ...]
    discovery_tag: tuple[str, str]
    # The second account copies go to (None: no copies) and its blob endpoint as the app reaches it.
    copy_account: str | None = None
    copy_blob_endpoint: str = ""

    def discovered_instance(self, resource_id: ApimResourceId, *, container: str | None = None) -> ProtectedInstance:
        """An instance found by tag discovery: the global defaults stand in for its (absent) settings entry."""
        return ProtectedInstance(resource_id=resource_id, container=container or self.backup_container,
                                 access_type=self.access_type, client_id=self.identity_client_id,
                                 posture=self.posture)


_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def is_valid_container(name: str) -> bool:
    return bool(_CONTAINER_RE.match(name))


def _clean(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting.

    :raises SettingsError: listing every invalid or missing setting, each by name.
    """
    import os

    env = os.environ if env is None else env
    problems: list[str] = []
    app_storage = _load_app_storage(env, problems)
    account, container, endpoint = _load_backup_account(env, problems)
    access_type, identity_client_id, backup_key = _load_storage_access(env, problems)
    schedule = _load_schedule(env, problems)
    arm_endpoint, azure_client_id, webhook = _load_azure(env, problems)
    posture = Posture(
        rpo_hours=_int_setting(env, "APIM_DR_RPO_HOURS", problems),
        keep_last=_int_setting(env, "APIM_DR_RETENTION_KEEP_LAST", problems),
        max_age_days=_int_setting(env, "APIM_DR_RETENTION_MAX_AGE_DAYS", problems),
        drill_every_days=_int_setting(env, "APIM_DR_DRILL_EVERY_DAYS", problems),
        max_attempts=_int_setting(env, "APIM_DR_BACKUP_MAX_ATTEMPTS", problems),
        keep_daily=_int_setting(env, "APIM_DR_RETENTION_KEEP_DAILY", problems),
        keep_weekly=_int_setting(env, "APIM_DR_RETENTION_KEEP_WEEKLY", problems),
        keep_monthly=_int_setting(env, "APIM_DR_RETENTION_KEEP_MONTHLY", problems),
        recovery=_recovery_setting(env, problems),
    )
    copy_account, copy_endpoint = _load_copy_account(env, account, backup_key, problems)
    posture = replace(posture, copy=copy_account is not None)
    timing = {name: _int_setting(env, setting, problems) for name, setting in _TIMING.items()}
    subscriptions, discovery_tag = _load_discovery(env, problems)
    instances, instance_errors = _parse_instances(
        env.get("APIM_DR_INSTANCES") or "[]", default_container=container, default_access=access_type,
        default_client_id=identity_client_id, default_posture=posture, problems=problems,
    )
    if not instances and not instance_errors and not subscriptions and "APIM_DR_INSTANCES" not in _fatal(problems):
        problems.append(
            "APIM_DR_INSTANCES is empty and APIM_DR_DISCOVERY_SUBSCRIPTIONS is not set; nothing would be protected."
            " List APIM resource IDs in APIM_DR_INSTANCES or subscriptions to search for tagged instances"
        )
    if problems or schedule is None:
        raise SettingsError(problems)
    return Settings(
        app_storage=app_storage,
        backup_account=account,
        backup_container=container,
        backup_blob_endpoint=endpoint.rstrip("/"),
        access_type=access_type,
        identity_client_id=identity_client_id,
        backup_storage_key=backup_key,
        schedule=schedule,
        arm_endpoint=arm_endpoint,
        azure_client_id=azure_client_id,
        webhook_url=webhook,
        posture=posture,
        instances=tuple(instances),
        instance_errors=tuple(instance_errors),
        discovery_subscriptions=tuple(subscriptions),
        discovery_tag=discovery_tag,
        copy_account=copy_account,
        copy_blob_endpoint=copy_endpoint.rstrip("/"),
        **timing,
    )


# Settings fields from whole-number settings (their defaults and ranges are in SETTINGS).
_TIMING = {
    "backup_timeout_minutes": "APIM_DR_BACKUP_TIMEOUT_MINUTES",
    "restore_timeout_minutes": "APIM_DR_RESTORE_TIMEOUT_MINUTES",
    "max_poll_delay_seconds": "APIM_DR_MAX_POLL_DELAY_SECONDS",
    "start_lease_seconds": "APIM_DR_START_LEASE_SECONDS",
    "expiry_margin_hours": "APIM_DR_EXPIRY_MARGIN_HOURS",
    "attempt_backoff_seconds": "APIM_DR_ATTEMPT_BACKOFF_SECONDS",
    "snapshot_timeout_minutes": "APIM_DR_SNAPSHOT_TIMEOUT_MINUTES",
    "snapshot_reads_per_second": "APIM_DR_SNAPSHOT_READS_PER_SECOND",
}


def _load_backup_account(env: Mapping[str, str], problems: list[str]) -> tuple[str, str, str]:
    """The backup account's name, the default container, and the account's blob endpoint."""
    account = _clean(env, "APIM_DR_BACKUP_STORAGE_ACCOUNT")
    if not account:
        problems.append("APIM_DR_BACKUP_STORAGE_ACCOUNT is missing; expected the name of the backup storage account")
    elif not _ACCOUNT_RE.match(account):
        problems.append(
            f"APIM_DR_BACKUP_STORAGE_ACCOUNT={_show(account)} is not a storage account name;"
            " expected 3-24 lowercase letters and digits"
        )
    container = _clean(env, "APIM_DR_BACKUP_CONTAINER") or _default("APIM_DR_BACKUP_CONTAINER")
    if not is_valid_container(container):
        problems.append(
            f"APIM_DR_BACKUP_CONTAINER={_show(container)} is not a container name; expected 3-63 lowercase letters,"
            " digits and single hyphens, starting and ending with a letter or digit"
        )
    endpoint = _clean(env, "APIM_DR_BACKUP_BLOB_ENDPOINT") or (
        f"https://{account}.blob.core.windows.net" if account else ""
    )
    if endpoint and not _is_url(endpoint):
        problems.append(f"APIM_DR_BACKUP_BLOB_ENDPOINT={_show(endpoint)} is not an http(s) URL")
    return account, container, endpoint


def _load_copy_account(env: Mapping[str, str], backup_account: str, backup_key: Secret | None,
                       problems: list[str]) -> tuple[str | None, str]:
    """The second account copies go to (None: no copies), and its blob endpoint."""
    account = _clean(env, "APIM_DR_COPY_STORAGE_ACCOUNT")
    endpoint = _clean(env, "APIM_DR_COPY_BLOB_ENDPOINT")
    if not account:
        if endpoint:
            problems.append("APIM_DR_COPY_BLOB_ENDPOINT is set but APIM_DR_COPY_STORAGE_ACCOUNT is not; name the copy "
                            "account, or remove the endpoint")
        return None, ""
    if not _ACCOUNT_RE.match(account):
        problems.append(f"APIM_DR_COPY_STORAGE_ACCOUNT={_show(account)} is not a storage account name; expected 3-24 "
                        "lowercase letters and digits")
        return None, ""
    if account == backup_account:
        problems.append(f"APIM_DR_COPY_STORAGE_ACCOUNT={account} is the backup account itself; a copy must live in a "
                        "second account (in another region)")
        return None, ""
    if backup_key is not None:
        # A server-side copy reads its source with a bearer token (x-ms-copy-source-authorization); with the key
        # set the app reaches the backup account by key, and a copy would need a SAS in a URL instead.
        problems.append("APIM_DR_COPY_STORAGE_ACCOUNT needs the app to reach the backup account with its identity, "
                        "but APIM_DR_BACKUP_STORAGE_KEY is set (AccessKey); copies work with managed identities only")
        return None, ""
    endpoint = endpoint or f"https://{account}.blob.core.windows.net"
    if not _is_url(endpoint):
        problems.append(f"APIM_DR_COPY_BLOB_ENDPOINT={_show(endpoint)} is not an http(s) URL")
    return account, endpoint


def _load_storage_access(env: Mapping[str, str],
                         problems: list[str]) -> tuple[StorageAccessType, str | None, Secret | None]:
    """How APIM reaches the backup account: the access type, APIM's user-assigned identity, the account key."""
    default = StorageAccessType(_default("APIM_DR_STORAGE_ACCESS_TYPE"))
    access_type = _parse_access_type(_clean(env, "APIM_DR_STORAGE_ACCESS_TYPE") or default.value,
                                     "APIM_DR_STORAGE_ACCESS_TYPE", problems) or default
    identity_client_id = _clean(env, "APIM_DR_STORAGE_IDENTITY_CLIENT_ID") or None
    if identity_client_id and not _GUID_RE.match(identity_client_id):
        problems.append(f"APIM_DR_STORAGE_IDENTITY_CLIENT_ID={_show(identity_client_id)} is not a client ID (GUID)")
    key_text = _clean(env, "APIM_DR_BACKUP_STORAGE_KEY")
    backup_key = Secret(key_text) if key_text else None
    if access_type is StorageAccessType.USER_ASSIGNED and not identity_client_id:
        problems.append(
            "APIM_DR_STORAGE_IDENTITY_CLIENT_ID is missing; APIM_DR_STORAGE_ACCESS_TYPE=UserAssignedManagedIdentity"
            " needs the client ID of APIM's user-assigned identity"
        )
    if access_type is StorageAccessType.ACCESS_KEY and not backup_key:
        problems.append(
            "APIM_DR_BACKUP_STORAGE_KEY is missing; APIM_DR_STORAGE_ACCESS_TYPE=AccessKey needs the backup account"
            " key (a Key Vault reference in Azure)"
        )
    return access_type, identity_client_id, backup_key


def _load_schedule(env: Mapping[str, str], problems: list[str]) -> Ncrontab | None:
    # Not stripped: the timer reads the value as it is, and a stray tab or newline leaves it in error.
    raw_schedule = env.get("BACKUP_SCHEDULE")
    try:
        return Ncrontab.parse(_default("BACKUP_SCHEDULE") if raw_schedule is None else raw_schedule)
    except InvalidScheduleError as e:
        problems.append(f"BACKUP_SCHEDULE: {e}")
        return None


def _load_azure(env: Mapping[str, str], problems: list[str]) -> tuple[str, str | None, Secret | None]:
    """The ARM endpoint, the app's own identity, and the webhook."""
    arm_endpoint = (_clean(env, "APIM_DR_ARM_ENDPOINT") or _default("APIM_DR_ARM_ENDPOINT")).rstrip("/")
    if not arm_endpoint.startswith("https://") or not _is_url(arm_endpoint):
        problems.append(
            f"APIM_DR_ARM_ENDPOINT={_show(arm_endpoint)} must be an https URL (bearer tokens are never sent over http)"
        )
    azure_client_id = _clean(env, "AZURE_CLIENT_ID") or None
    if azure_client_id and not _GUID_RE.match(azure_client_id):
        problems.append(f"AZURE_CLIENT_ID={_show(azure_client_id)} is not a client ID (GUID)")
    webhook_text = _clean(env, "APIM_DR_WEBHOOK_URL")
    if webhook_text and not _is_url(webhook_text):
        # The URL itself may carry a token: name the setting, never echo the value.
        problems.append("APIM_DR_WEBHOOK_URL is not an http(s) URL")
    return arm_endpoint, azure_client_id, Secret(webhook_text) if webhook_text else None


def _load_discovery(env: Mapping[str, str], problems: list[str]) -> tuple[list[str], tuple[str, str]]:
    """The subscriptions searched for tagged instances, and the tag."""
    subscriptions: list[str] = []
    for sub in filter(None, (s.strip() for s in _clean(env, "APIM_DR_DISCOVERY_SUBSCRIPTIONS").split(","))):
        if _GUID_RE.match(sub):
            subscriptions.append(sub.lower())
        else:
            problems.append(f"APIM_DR_DISCOVERY_SUBSCRIPTIONS: {_show(sub)} is not a subscription ID (GUID)")
    default = _default("APIM_DR_DISCOVERY_TAG")
    tag_text = _clean(env, "APIM_DR_DISCOVERY_TAG") or default
    tag_name, sep, tag_value = tag_text.partition("=")
    if not sep or not tag_name.strip() or not tag_value.strip():
        problems.append(f"APIM_DR_DISCOVERY_TAG={_show(tag_text)} must be name=value, e.g. {default}")
    return subscriptions, (tag_name.strip(), tag_value.strip())


def _fatal(problems: list[str]) -> str:
    return "\n".join(problems)


def _load_app_storage(env: Mapping[str, str], problems: list[str]) -> AppStorage:
    conn = _clean(env, "AzureWebJobsStorage")
    if conn:
        if conn != "UseDevelopmentStorage=true" and "=" not in conn:
            problems.append("AzureWebJobsStorage is not a storage connection string")
        return AppStorage(connection_string=Secret(conn))
    queue_uri = _clean(env, "AzureWebJobsStorage__queueServiceUri") or None
    table_uri = _clean(env, "AzureWebJobsStorage__tableServiceUri") or None
    blob_uri = _clean(env, "AzureWebJobsStorage__blobServiceUri") or None
    client_id = _clean(env, "AzureWebJobsStorage__clientId") or None
    if not queue_uri or not table_uri:
        missing = [n for n, v in (("AzureWebJobsStorage__queueServiceUri", queue_uri),
                                  ("AzureWebJobsStorage__tableServiceUri", table_uri)) if not v]
        problems.append(
            "AzureWebJobsStorage is not set and the identity-based connection is incomplete: "
            + ", ".join(missing) + " missing; set a connection string or the service URIs"
        )
    for name, uri in (("AzureWebJobsStorage__queueServiceUri", queue_uri),
                      ("AzureWebJobsStorage__tableServiceUri", table_uri),
                      ("AzureWebJobsStorage__blobServiceUri", blob_uri)):
        if uri and not uri.startswith("https://"):
            problems.append(f"{name}={_show(uri)} must be an https URL (identity tokens need TLS)")
    if client_id and not _GUID_RE.match(client_id):
        problems.append(f"AzureWebJobsStorage__clientId={_show(client_id)} is not a client ID (GUID)")
    return AppStorage(queue_uri=queue_uri, table_uri=table_uri, blob_uri=blob_uri, client_id=client_id)


def _parse_access_type(value: str, where: str, problems: list[str]) -> StorageAccessType | None:
    for member in StorageAccessType:
        if member.value.lower() == value.lower():
            return member
    problems.append(
        f"{where}={_show(value)} is not a storage access type; expected one of "
        + ", ".join(m.value for m in StorageAccessType)
    )
    return None


def _parse_instances(
    text: str,
    *,
    default_container: str,
    default_access: StorageAccessType,
    default_client_id: str | None,
    default_posture: Posture,
    problems: list[str],
) -> tuple[list[ProtectedInstance], list[str]]:
    """The instances of ``APIM_DR_INSTANCES``, and one error per entry skipped (each entry on its own)."""
    data = _instances_list(text, problems)
    instances: list[ProtectedInstance] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        where = f"APIM_DR_INSTANCES[{index}]"
        try:
            instance = _parse_instance(entry, default_container, default_access, default_client_id, default_posture)
        except ValueError as e:
            errors.append(f"{where}: {e}")
            continue
        if instance.resource_id.key in seen:
            first = seen[instance.resource_id.key]
            errors.append(f"{where}: {instance.resource_id} is already listed at index {first}")
            continue
        seen[instance.resource_id.key] = index
        instances.append(instance)
    errors += _duplicate_aliases(instances)
    instances = _refuse_primaries_as_targets(instances, errors)
    if len(errors) > _MAX_REPORTED_ERRORS:
        # Every bad entry is skipped; the report names the first ones, so one bad paste can't flood the logs.
        errors = [*errors[:_MAX_REPORTED_ERRORS], f"APIM_DR_INSTANCES: {len(errors) - _MAX_REPORTED_ERRORS} more "
                  "entries are invalid or duplicated and were skipped"]
    return instances, errors


def _duplicate_aliases(instances: list[ProtectedInstance]) -> list[str]:
    seen: set[str] = set()
    errors: list[str] = []
    for inst in instances:
        if inst.alias:
            if inst.alias.lower() in seen:
                errors.append(f"APIM_DR_INSTANCES: alias {inst.alias!r} is used twice")
            seen.add(inst.alias.lower())
    return errors


def _instances_list(text: str, problems: list[str]) -> list[Any]:
    """``APIM_DR_INSTANCES`` as a JSON list; empty (and a problem named) when it is not one of a sane size."""
    if len(text) > _MAX_INSTANCES_JSON:
        problems.append(f"APIM_DR_INSTANCES is {len(text)} characters long; at most {_MAX_INSTANCES_JSON}")
        return []
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        problems.append(f"APIM_DR_INSTANCES is not valid JSON ({e.msg} at line {e.lineno} column {e.colno});"
                        " expected a JSON list of APIM resource IDs or objects")
        return []
    if not isinstance(data, list):
        problems.append(f"APIM_DR_INSTANCES must be a JSON list, got a JSON {type(data).__name__}")
        return []
    if len(data) > _MAX_INSTANCES:
        problems.append(f"APIM_DR_INSTANCES lists {len(data)} instances; at most {_MAX_INSTANCES} (use "
                        "APIM_DR_DISCOVERY_SUBSCRIPTIONS and the discovery tag for larger fleets)")
        return []
    return data


_INSTANCE_KEYS = {"resourceId", "container", "accessType", "clientId", "alias", "standby", "standbySync",
                  "drillTarget", "drillEveryDays", "rpoHours", "keepLast", "maxAgeDays", "recovery", "maxAttempts",
                  "keepDaily", "keepWeekly", "keepMonthly", "copy"}
_POSTURE_KEYS = {"rpoHours": "APIM_DR_RPO_HOURS", "keepLast": "APIM_DR_RETENTION_KEEP_LAST",
                 "maxAgeDays": "APIM_DR_RETENTION_MAX_AGE_DAYS", "drillEveryDays": "APIM_DR_DRILL_EVERY_DAYS",
                 "maxAttempts": "APIM_DR_BACKUP_MAX_ATTEMPTS",
                 "keepDaily": "APIM_DR_RETENTION_KEEP_DAILY", "keepWeekly": "APIM_DR_RETENTION_KEEP_WEEKLY",
                 "keepMonthly": "APIM_DR_RETENTION_KEEP_MONTHLY"}


def _refuse_primaries_as_targets(instances: list[ProtectedInstance], errors: list[str]) -> list[ProtectedInstance]:
    """A standby sync or drill would overwrite its target: never one that is itself protected (a primary).

    The instance stays protected (its backups go on); only the offending option is switched off, by name.
    """
    primaries = {inst.resource_id.key for inst in instances}
    checked: list[ProtectedInstance] = []
    for inst in instances:
        posture = inst.posture
        if posture.drill_target is not None and posture.drill_target.key in primaries:
            errors.append(f"APIM_DR_INSTANCES: {inst.name}: drillTarget {posture.drill_target.service_name} is a "
                          "protected instance (a primary); drills of this instance are off until it names a "
                          "dedicated drill instance")
            posture = replace(posture, drill_target=None)
        if posture.standby_sync and inst.standby is not None and inst.standby.key in primaries:
            errors.append(f"APIM_DR_INSTANCES: {inst.name}: standbySync would restore into "
                          f"{inst.standby.service_name}, a protected instance (a primary); standby sync is off")
            posture = replace(posture, standby_sync=False)
        checked.append(replace(inst, posture=posture) if posture is not inst.posture else inst)
    return checked


def _parse_instance(
    entry: object, default_container: str, default_access: StorageAccessType, default_client_id: str | None,
    default_posture: Posture,
) -> ProtectedInstance:
    if isinstance(entry, str):
        entry = {"resourceId": entry}
    if not isinstance(entry, dict):
        raise ValueError(f"expected a resource ID string or an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - _INSTANCE_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_INSTANCE_KEYS))
        raise ValueError(f"unknown keys {', '.join(map(repr, unknown[:5]))}; allowed: {allowed}")
    try:
        resource_id = ApimResourceId.parse(entry.get("resourceId"))
    except InvalidResourceIdError as e:
        raise ValueError(f"resourceId: {e}") from e
    container = entry.get("container", default_container)
    if not isinstance(container, str) or not is_valid_container(container):
        raise ValueError(f"container {_show(str(container))} is not a valid blob container name")
    access, client_id = _parse_instance_access(entry, default_access, default_client_id)
    alias = entry.get("alias")
    if alias is not None and (not isinstance(alias, str) or not _ALIAS_RE.match(alias)):
        raise ValueError(f"alias {_show(str(alias))} must be 1-63 letters, digits, '.', '_' or '-'")
    standby = _parse_target(entry, "standby", resource_id)
    posture = _parse_posture(entry, default_posture, resource_id, standby)
    posture = _parse_copy(entry, posture, default_posture, access)
    return ProtectedInstance(resource_id, container, access, client_id, alias, standby, posture)


def _parse_instance_access(entry: JsonObject, default_access: StorageAccessType,
                           default_client_id: str | None) -> tuple[StorageAccessType, str | None]:
    """How APIM reaches the backup account for this instance: its access type and user-assigned identity."""
    access_text = entry.get("accessType")
    access = default_access
    if access_text is not None:
        problems: list[str] = []
        parsed = _parse_access_type(str(access_text), "accessType", problems)
        if parsed is None:
            raise ValueError(problems[0])
        access = parsed
    client_id = entry.get("clientId", default_client_id if access is StorageAccessType.USER_ASSIGNED else None)
    if client_id is not None and (not isinstance(client_id, str) or not _GUID_RE.match(client_id)):
        raise ValueError(f"clientId {_show(str(client_id))} is not a client ID (GUID)")
    if access is StorageAccessType.USER_ASSIGNED and not client_id:
        raise ValueError(
            "accessType UserAssignedManagedIdentity needs clientId (or APIM_DR_STORAGE_IDENTITY_CLIENT_ID)")
    return access, client_id


def _parse_target(entry: JsonObject, key: str, resource_id: ApimResourceId, *,
                  itself: str | None = None) -> ApimResourceId | None:
    """An instance another one restores into (``standby``, ``drillTarget``): a resource ID, never the instance."""
    if entry.get(key) is None:
        return None
    try:
        target = ApimResourceId.parse(entry[key])
    except InvalidResourceIdError as e:
        raise ValueError(f"{key}: {e}") from e
    if target.key == resource_id.key:
        raise ValueError(itself or f"{key} is the instance itself")
    return target


def _parse_posture(entry: JsonObject, default: Posture, resource_id: ApimResourceId,
                   standby: ApimResourceId | None) -> Posture:
    numbers: dict[str, int] = {}
    for key, setting in _POSTURE_KEYS.items():
        value = entry.get(key)
        if value is None:
            continue
        spec = _SPECS[setting]
        assert spec.minimum is not None and spec.maximum is not None
        if not isinstance(value, int) or isinstance(value, bool) or not spec.minimum <= value <= spec.maximum:
            raise ValueError(f"{key} {_show(str(value))} must be a whole number between {spec.minimum} and "
                             f"{spec.maximum}")
        numbers[key] = value
    sync = entry.get("standbySync", False)
    if not isinstance(sync, bool):
        raise ValueError(f"standbySync {_show(str(sync))} must be true or false")
    if sync and standby is None:
        raise ValueError("standbySync needs a standby to restore into")
    drill_target = _parse_target(
        entry, "drillTarget", resource_id,
        itself="drillTarget is the instance itself; a drill restores into a dedicated instance")
    recovery = default.recovery
    if entry.get("recovery") is not None:
        recovery = _parse_recovery(entry["recovery"], "recovery")
    return Posture(
        rpo_hours=numbers.get("rpoHours", default.rpo_hours),
        keep_last=numbers.get("keepLast", default.keep_last),
        max_age_days=numbers.get("maxAgeDays", default.max_age_days),
        standby_sync=sync,
        drill_target=drill_target,
        drill_every_days=numbers.get("drillEveryDays", default.drill_every_days),
        max_attempts=numbers.get("maxAttempts", default.max_attempts),
        keep_daily=numbers.get("keepDaily", default.keep_daily),
        keep_weekly=numbers.get("keepWeekly", default.keep_weekly),
        keep_monthly=numbers.get("keepMonthly", default.keep_monthly),
        copy=default.copy,
        recovery=recovery,
    )


def _parse_copy(entry: JsonObject, posture: Posture, default: Posture, access: StorageAccessType) -> Posture:
    """``copy``: on by default when a copy account is configured, except for AccessKey instances.

    APIM restores from the copy account with the instance's identity; with AccessKey it would need that
    account's key, which apim-dr does not hold, so such an instance is not copied unless it says so, and
    saying so is an error.
    """
    value = entry.get("copy")
    if value is None:
        return replace(posture, copy=default.copy and access is not StorageAccessType.ACCESS_KEY)
    if not isinstance(value, bool):
        raise ValueError(f"copy {_show(str(value))} must be true or false")
    if value and not default.copy:
        raise ValueError("copy needs APIM_DR_COPY_STORAGE_ACCOUNT (the second account copies go to)")
    if value and access is StorageAccessType.ACCESS_KEY:
        raise ValueError("copy needs a managed identity: with accessType AccessKey APIM could not read the copy "
                         "account (apim-dr holds no key for it)")
    return replace(posture, copy=value)


def _parse_recovery(value: object, where: str) -> Recovery:
    allowed = ", ".join(r.value for r in Recovery)
    if not isinstance(value, str):
        raise ValueError(f"{where} {_show(str(value))} must be one of {allowed}")
    try:
        return Recovery(value.strip().lower())
    except ValueError:
        raise ValueError(f"{where} {_show(value)} must be one of {allowed}") from None


def _recovery_setting(env: Mapping[str, str], problems: list[str]) -> Recovery:
    text = _clean(env, "APIM_DR_RECOVERY")
    if not text:
        return Recovery(default_of("APIM_DR_RECOVERY"))
    try:
        return _parse_recovery(text, "APIM_DR_RECOVERY")
    except ValueError as e:
        problems.append(str(e))
        return Recovery(default_of("APIM_DR_RECOVERY"))


def _int_setting(env: Mapping[str, str], name: str, problems: list[str]) -> int:
    spec = _SPECS[name]
    assert spec.default is not None and spec.minimum is not None and spec.maximum is not None
    default, low, high = int(spec.default), spec.minimum, spec.maximum
    text = _clean(env, name)
    if not text:
        return default
    if not text.isdigit() or len(text) > 9:
        problems.append(f"{name}={_show(text)} is not a whole number between {low} and {high}")
        return default
    value = int(text)
    if not low <= value <= high:
        problems.append(f"{name}={value} is outside {low}-{high}")
        return default
    return value


def _is_url(value: str) -> bool:
    return bool(re.match(r"^https?://[^\s/?#]+(?:[/?#]\S*)?$", value)) and len(value) <= 2048


def _show(value: str, limit: int = 60) -> str:
    """Quote a setting's value for an error message, cut short so hostile input can't flood logs."""
    value = value.replace("\n", "\\n").replace("\r", "\\r")
    return repr(value if len(value) <= limit else value[:limit] + "...")
