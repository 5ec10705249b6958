"""LocalAzure(blob_front=True): the app and the APIM emulator reach the backup account through the front."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from emulator.stack import LocalAzure

API = "api-version=2024-05-01"
CONTAINER = "apim-backups"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAzure]:
    stack = LocalAzure(Path(tmp_path_factory.mktemp("stack")), retry_after=1, op_duration=0.2, blob_front=True)
    stack.start()
    yield stack
    stack.stop()


def _arm(local: LocalAzure) -> requests.Session:
    assert local.apim is not None
    token = requests.get(local.apim.identity_endpoint, timeout=10,
                         params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
                         headers={"X-IDENTITY-HEADER": local.apim.identity_header}).json()["access_token"]
    session = requests.Session()
    session.verify = str(local.apim.ca_bundle)
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would win over verify
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _backup(local: LocalAzure, name: str) -> dict[str, Any]:
    """POST backup with the account key, poll to the end; the final answer's JSON."""
    assert local.apim is not None and local.azurite is not None
    arm = _arm(local)
    body = {"storageAccount": local.backup_account, "containerName": CONTAINER, "backupName": name,
            "accessType": "AccessKey", "accessKey": local.azurite.all_accounts()[local.backup_account]}
    url = f"{local.apim.arm_url}{local.resource_id('apim-contoso-prod')}/backup?{API}"
    response = arm.post(url, json=body, timeout=10)
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    deadline = time.monotonic() + 60
    while (response := arm.get(location, timeout=10)).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return {"status": response.status_code, **response.json()}


def test_app_settings_and_apim_writes_go_through_the_front(local: LocalAzure) -> None:
    assert local.front is not None and local.azurite is not None
    settings = local.app_settings([])
    assert settings["APIM_DR_BACKUP_BLOB_ENDPOINT"] == local.front.endpoint(local.backup_account)
    assert settings["AzureWebJobsStorage"] == local.azurite.connection_string()  # the app's own storage: Azurite

    name = f"prod-{uuid.uuid4().hex[:8]}.apimbackup"
    assert _backup(local, name)["status"] == 200
    writes = local.front.admin.requests(method="PUT", path_contains=name)
    assert [(w["operation"], w["auth"], w["status"]) for w in writes] == [("PutBlob", "sharedkey", 201)]
    blobs = BlobServiceClient.from_connection_string(local.front.connection_string(local.backup_account),
                                                     connection_verify=str(local.front.tls.ca_bundle))
    assert blobs.get_blob_client(CONTAINER, name).exists()


def test_worm_applies_to_apim_backups_too(local: LocalAzure) -> None:
    assert local.front is not None
    name = f"prod-{uuid.uuid4().hex[:8]}.apimbackup"
    assert _backup(local, name)["status"] == 200
    local.front.admin.set_container_policy(local.backup_account, CONTAINER, 30)
    try:
        assert _backup(local, f"prod-{uuid.uuid4().hex[:8]}.apimbackup")["status"] == 200  # a new blob: allowed
        again = _backup(local, name)  # overwriting a retained backup: Azure Storage refuses APIM's write
        assert again["status"] >= 400, again
        refused = local.front.admin.requests(decision="refused-immutability", path_contains=name)
        assert [r["errorCode"] for r in refused] == ["BlobImmutableDueToPolicy"]
    finally:
        local.front.admin.reset()
