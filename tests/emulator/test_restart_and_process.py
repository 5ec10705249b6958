"""State survives emulator restarts (soft and SIGKILL); the standalone command starts and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.storage.blob import BlobServiceClient
from emu_support import (
    ACCOUNT,
    CONTAINER,
    PROD,
    PROD_RG,
    PROJECT_ROOT,
    SEED_PATH,
    SUB,
    RawArm,
    SpecValidator,
    StaticTokenCredential,
    identity_token,
    key_body,
    service_path,
    unique,
)

from emulator.apim import ApimEmulator


class StartOnly(ARMPolling):
    """Send the POST only (the queue-worker pattern in apim-arm.md §2.5)."""

    def run(self) -> None:
        pass


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_running_operation_survives_a_restart(
    private_emu: ApimEmulator, blobs: BlobServiceClient, optional_spec: SpecValidator | None
) -> None:
    emu = private_emu.start()
    raw = RawArm(emu, optional_spec, identity_token(emu))
    emu.admin.set_op_duration(600, service=PROD)
    name = unique("restart")
    started = raw.start("backup", PROD, key_body(name))
    location = started.headers["Location"]
    assert raw.poll(location).status_code == 202

    emu.restart()
    assert raw.poll(location).status_code == 202
    assert raw.request("GET", service_path(PROD)).json()["properties"]["provisioningState"] == "Updating"
    assert not blobs.get_blob_client(CONTAINER, name).exists()
    emu.admin.advance_clock(601)
    done = raw.poll(location)
    assert done.status_code == 200 and done.json()["name"] == PROD
    assert blobs.get_blob_client(CONTAINER, name).exists()

    emu.restart(hard=True)
    again = raw.poll(location)
    assert again.status_code == 200 and again.json() == done.json()


def test_sdk_resumes_from_a_continuation_token_after_a_crash(private_emu: ApimEmulator) -> None:
    emu = private_emu.start()

    def client() -> ApiManagementClient:
        token = identity_token(emu)
        return ApiManagementClient(
            StaticTokenCredential(token), SUB, base_url=emu.arm_url, connection_verify=str(emu.ca_bundle)
        )

    params = Params(
        storage_account=ACCOUNT,
        container_name=CONTAINER,
        backup_name=unique("resume"),
        access_type="SystemAssignedManagedIdentity",
    )
    with client() as first:
        poller = first.api_management_service.begin_backup(
            PROD_RG, PROD, params, polling=StartOnly(lro_options={"final-state-via": "location"})
        )
        continuation = poller.continuation_token()
    emu.restart(hard=True)  # SIGKILL: no graceful shutdown
    with client() as second:
        # `parameters` is positional even when resuming; None is what apim-arm.md §2.1 prescribes.
        resumed = second.api_management_service.begin_backup(
            PROD_RG,
            PROD,
            None,  # type: ignore[call-overload]
            continuation_token=continuation,
            polling_interval=1,
        )
        assert resumed.result().name == PROD
    assert [op["status"] for op in emu.admin.operations(service=PROD)] == ["Succeeded"]


def test_clock_faults_settings_and_roles_survive_a_restart(private_emu: ApimEmulator) -> None:
    emu = private_emu.start()
    emu.admin.advance_clock(3 * 86400)
    fault = emu.admin.set_fault("http", on="get", status=503, count=5)
    emu.admin.set_retry_after(7)
    emu.admin.set_arm_roles(None)
    emu.admin.update_service(PROD, configuration={"apis": []})
    header = emu.identity_header
    emu.restart(hard=True)
    assert emu.admin.clock()["offsetSeconds"] == pytest.approx(3 * 86400)
    assert emu.admin.faults() == [fault]
    assert emu.admin.settings()["retryAfter"] == 7
    assert emu.admin.arm_roles() is None
    assert emu.admin.service(PROD)["configuration"]["apis"] == []
    assert emu.identity_header == header and identity_token(emu)


def test_stop_leaves_nothing_listening(private_emu: ApimEmulator) -> None:
    emu = private_emu.start()
    assert _port_open(emu.port) and _port_open(emu.identity_port)
    emu.stop()
    assert not _port_open(emu.port) and not _port_open(emu.identity_port)


def test_standalone_command_with_azurite(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.apim", "--seed", str(SEED_PATH), "--state-dir", str(tmp_path / "state"),
         "--start-azurite", "--ready-file", str(ready), "--log-level", "WARNING"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the emulator did not get ready"
            time.sleep(0.1)
        info = json.loads(ready.read_text())
        ca = info["caBundle"]
        assert requests.get(f"{info['armUrl']}/_emulator/health", verify=ca, timeout=10).json()["status"] == "ok"
        blob_port = int(info["blobEndpoint"].rsplit(":", 1)[1])
        blob = BlobServiceClient(
            f"{info['blobEndpoint']}/{ACCOUNT}",
            credential={"account_name": ACCOUNT, "account_key": key_body("x")["accessKey"]},
            connection_verify=ca,
        )
        blob.get_service_properties()  # Azurite is up, with the seed's account
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        output = proc.communicate(timeout=20)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output
    for expected in ("ARM endpoint", "IDENTITY_ENDPOINT=", "IDENTITY_HEADER=", f"REQUESTS_CA_BUNDLE={ca}", ACCOUNT):
        assert expected in output
    assert not _port_open(info["armPort"]) and not _port_open(info["identityPort"]) and not _port_open(blob_port)
