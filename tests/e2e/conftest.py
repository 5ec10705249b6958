"""End-to-end harness: the host stand-in runs function_app.py against Azurite and the APIM emulator.

One local Azure (Azurite + emulator) per session. Each test module starts the host it needs;
each test gets clean app storage, a reset emulator and its own settings (:meth:`E2E.configure`).
Nothing is mocked: the official SDKs talk HTTPS to the local servers.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dr_core.azure.tables import is_job_row, job_from_entity
from dr_core.context import get_context, reset_context
from dr_core.jobs.job import Job
from emulator.apim import EmulatorAdmin
from emulator.certs import TlsFiles
from emulator.clock import LinkedClock
from emulator.funchost import FunctionsHost
from emulator.stack import LocalAzure
from emulator.webhook import Webhook

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROD, STANDBY, PREMIUM, DEV, CONSUMPTION, V2 = (
    "apim-contoso-prod", "apim-contoso-dr", "apim-contoso-premium", "apim-contoso-dev", "apim-contoso-consumption",
    "apim-contoso-v2",
)
# Short waits for tests: the emulator answers Retry-After 1 and operations take ~2 s.
FAST = {"APIM_DR_MAX_POLL_DELAY_SECONDS": "2", "APIM_DR_START_LEASE_SECONDS": "2",
        # The tests of native backups see only native backups; test_snapshots.py chooses snapshots (or auto).
        "APIM_DR_RECOVERY": "native"}


_ROLE_TABLES: dict[int, dict[str, list[dict[str, Any]]]] = {}
_ARM_ROLE_TABLES: dict[int, dict[str, list[dict[str, Any]]]] = {}


def backup_account_roles(stack: LocalAzure) -> dict[str, list[dict[str, Any]]]:
    """The blob front's role table: what infra/ grants, enforced on every bearer-token request.

    The Function App's identity gets exactly the roles main.bicep assigns it on the backup account
    (built-in and custom, read from the templates); the APIM identities get the seed's assignments.
    A storage call the code makes that infra does not grant fails the end-to-end tests.
    """
    from emulator.blobfront.rbac import roles_from_seed
    from tests.infra.bicep_model import Infra
    from tests.infra.rbac_model import BACKUP_STORAGE, COPY_STORAGE, grants

    app_principal = stack.function_app_principal_id
    table = {oid: entries for oid, entries in roles_from_seed(stack.seed_data).items() if oid != app_principal}
    table[app_principal] = [
        {"actions": list(g.role.actions), "notActions": list(g.role.not_actions),
         "dataActions": list(g.role.data_actions), "notDataActions": list(g.role.not_data_actions),
         "scope": stack.backup_account}
        for g in grants(Infra.from_disk()) if g.scope == BACKUP_STORAGE and g.role is not None]
    if stack.copy_account is not None:  # the copy account (issue 21): exactly what infra grants there
        table[app_principal] += [
            {"actions": list(g.role.actions), "notActions": list(g.role.not_actions),
             "dataActions": list(g.role.data_actions), "notDataActions": list(g.role.not_data_actions),
             "scope": stack.copy_account}
            for g in grants(Infra.from_disk()) if g.scope == COPY_STORAGE and g.role is not None]
    return table


def app_arm_roles(stack: LocalAzure) -> dict[str, list[dict[str, Any]]]:
    """The APIM emulator's role table: what infra/ grants the Function App on APIM instances, enforced per request.

    The app's identities get exactly the custom roles main.bicep assigns on each instance (APIM DR Operator:
    reads, backup, restore; APIM DR Configuration Restore: item writes), read from the templates, at the seed's
    subscriptions; other principals keep the seed's assignments. An ARM call the code makes that infra does
    not grant fails the end-to-end tests.
    """
    from tests.infra.bicep_model import Infra
    from tests.infra.rbac_model import APIM_INSTANCE, grants

    roles = [g.role for g in grants(Infra.from_disk()) if g.scope == APIM_INSTANCE and g.role is not None]
    actions = sorted({a for role in roles for a in role.actions})
    app = stack.seed_data["functionApp"]
    principals = {app["systemAssignedIdentity"]["principalId"]} | {
        u["principalId"] for u in app.get("userAssignedIdentities") or []}
    table = {oid: entries for oid, entries in (stack.seed_data.get("armRoles") or {}).items() if oid not in principals}
    for oid in principals:
        table[oid] = [{"actions": actions, "scope": f"/subscriptions/{s['subscriptionId']}"}
                      for s in stack.seed_data["subscriptions"]]
    return table


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[LocalAzure]:
    # One CA for the whole session (tests/conftest.py sets REQUESTS_CA_BUNDLE to it): every local
    # server, whichever test module starts it, is trusted the same way.
    # The backup account sits behind the blob front: immutability and RBAC as Azure enforces them.
    local = LocalAzure(tmp_path_factory.mktemp("local-azure"), retry_after=1, op_duration=2.0, blob_front=True,
                       tls=tls)
    local.start()
    assert local.front is not None
    _ROLE_TABLES[id(local)] = backup_account_roles(local)
    local.front.admin.set_roles(_ROLE_TABLES[id(local)])
    assert local.apim is not None
    _ARM_ROLE_TABLES[id(local)] = app_arm_roles(local)
    local.apim.admin.set_arm_roles(_ARM_ROLE_TABLES[id(local)])
    yield local
    local.stop()


@pytest.fixture(scope="session")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


def default_instances(stack: LocalAzure) -> list[Any]:
    return [{"resourceId": stack.resource_id(PROD), "alias": "prod", "standby": stack.resource_id(STANDBY)}]


class E2E:
    """What a test needs: settings, the host, the emulator's admin API, the jobs table and HTTP."""

    def __init__(self, stack: LocalAzure, host: FunctionsHost | None, webhook: Webhook) -> None:
        self.stack = stack
        self.host = host
        self.webhook = webhook
        assert stack.apim is not None
        self.admin = stack.apim.admin

    def settings(self, instances: list[Any] | None = None, **extra: str) -> dict[str, str]:
        values = {**FAST, "APIM_DR_WEBHOOK_URL": self.webhook.url, **extra}
        return self.stack.app_settings(instances if instances is not None else default_instances(self.stack),
                                       extra=values)

    def configure(self, instances: list[Any] | None = None, **extra: str) -> dict[str, str]:
        """Apply settings to this process (the in-process host reads the same environment)."""
        values = self.settings(instances, **extra)
        for key in [k for k in os.environ if k.startswith("APIM_DR_")]:
            os.environ.pop(key, None)
        os.environ.update(values)
        # The app's clock follows the emulator's, so backups age for both (its own admin session).
        assert self.stack.apim is not None
        reset_context(clock=LinkedClock(EmulatorAdmin(self.stack.apim.arm_url, self.stack.apim.ca_bundle)))
        return values

    def rid(self, name: str) -> str:
        return self.stack.resource_id(name)

    # -- observing ------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job:
        job = get_context().jobs.get(job_id)
        assert job is not None, f"no job {job_id}"
        return job

    def all_jobs(self) -> list[Job]:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableClient

        # Straight to Azurite, not through the app's settings (a test may have broken them on purpose).
        assert self.stack.azurite is not None
        table = TableClient.from_connection_string(self.stack.azurite.connection_string(), "apimdrjobs")
        try:
            return [job_from_entity(e) for e in table.list_entities() if is_job_row(e)]
        except ResourceNotFoundError:
            return []  # nothing has created the table yet: no jobs

    def wait_terminal(self, job_ids: list[str], timeout: float = 90) -> list[Job]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = [self.job(j) for j in job_ids]
            if all(j.state.terminal for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError("jobs not finished: " + ", ".join(f"{j.job_id}={j.state.value}" for j in jobs))
            time.sleep(0.3)

    def wait_settled(self, job_ids: list[str], timeout: float = 90) -> list[Job]:
        """The jobs once ended and their follow-ups done (manifest, RPO check, standby sync, drill check).

        A job's row says ``Succeeded`` before its followers run (they run after the end is saved, and may
        still write: a manifest, a record, a restore, an announcement). A test that counts requests or reads
        what followers write waits for this, not for the state alone.
        """
        deadline = time.monotonic() + timeout
        while True:
            jobs = [self.job(j) for j in job_ids]
            if all(j.state.terminal and not j.follow_ups for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError("jobs not settled: " + ", ".join(
                    f"{j.job_id}={j.state.value} follow-ups {j.follow_ups}" for j in jobs))
            time.sleep(0.3)

    def posts(self, service: str, action: str = "backup") -> list[dict[str, Any]]:
        return [r for r in self.admin.requests(method="POST")
                if r["path"].rstrip("/").endswith(f"/service/{service}/{action}")]

    # -- HTTP through the host --------------------------------------------------------------------
    def http(self, method: str, path: str, *, key: bool = True, **kwargs: Any) -> requests.Response:
        assert self.host is not None and self.host.http_url
        headers = dict(kwargs.pop("headers", {}) or {})
        if key:
            headers["x-functions-key"] = next(iter(self.host.function_keys.values()))
        return requests.request(method, self.host.http_url + path, headers=headers, timeout=60, **kwargs)


def clean_app_storage(stack: LocalAzure) -> None:
    """Empty the jobs table and the work queues (names are fixed in code)."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    assert stack.azurite is not None
    conn = stack.azurite.connection_string()
    tables = TableServiceClient.from_connection_string(conn)
    with contextlib.suppress(Exception):
        tables.delete_table("apimdrjobs")
    queues = QueueServiceClient.from_connection_string(conn)
    for name in ("apim-dr-jobs", "apim-dr-jobs-poison", "apim-dr-polls", "apim-dr-polls-poison"):
        with contextlib.suppress(Exception):
            queues.get_queue_client(name).clear_messages()
    from azure.storage.blob import BlobServiceClient

    accounts = [stack.backup_account] + ([stack.copy_account] if stack.copy_account else [])
    for account in accounts:
        backups = BlobServiceClient.from_connection_string(stack.azurite.connection_string(account))
        for container in backups.list_containers():
            client = backups.get_container_client(container.name)
            for blob in client.list_blobs():
                client.delete_blob(blob.name)


def ensure_backup_containers(stack: LocalAzure) -> None:
    """The backup account's containers, as infra/storage/backup-storage.bicep creates them (the default one)."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    assert stack.azurite is not None
    backups = BlobServiceClient.from_connection_string(stack.azurite.connection_string(stack.backup_account))
    with contextlib.suppress(ResourceExistsError):
        backups.create_container("apim-backups")


def make_harness(stack: LocalAzure, host: FunctionsHost | None, webhook: Webhook) -> E2E:
    assert stack.apim is not None
    stack.apim.admin.reset()
    stack.apim.admin.set_arm_roles(_ARM_ROLE_TABLES.get(id(stack)) or app_arm_roles(stack))  # reset: the seed's
    if stack.front is not None:
        stack.front.admin.reset()  # policies, holds, clock, log
        stack.front.admin.set_roles(_ROLE_TABLES.get(id(stack)) or backup_account_roles(stack))
    clean_app_storage(stack)
    ensure_backup_containers(stack)
    webhook.clear()
    harness = E2E(stack, host, webhook)
    harness.configure()
    return harness


@pytest.fixture(scope="module")
def host(stack: LocalAzure, webhook: Webhook) -> Iterator[FunctionsHost]:
    """The app in the in-process host stand-in, connection-string mode, queues and HTTP on."""
    harness = E2E(stack, None, webhook)
    functions_host = FunctionsHost(PROJECT_ROOT, harness.settings(), run_timers=False, run_queues=True,
                                   http_port=0, queue_lease=30)
    functions_host.start()
    yield functions_host
    functions_host.stop()
    reset_context()


@pytest.fixture
def e2e(stack: LocalAzure, host: FunctionsHost, webhook: Webhook) -> E2E:
    return make_harness(stack, host, webhook)


def eventually(check: Callable[[], Any], timeout: float = 30, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
