"""The official azure-mgmt-apimanagement client drives the emulator unchanged (base_url + CA bundle only)."""

from __future__ import annotations

import json

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from azure.storage.blob import BlobServiceClient
from emu_support import ACCOUNT, CONTAINER, DR, DR_RG, PROD, PROD_RG, SUB, SpecValidator, unique

from emulator.apim import ApimEmulator


@pytest.fixture
def mi_client(emu: ApimEmulator, monkeypatch: pytest.MonkeyPatch) -> ApiManagementClient:
    """The Function App's code path: ManagedIdentityCredential from IDENTITY_ENDPOINT/IDENTITY_HEADER."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
    return ApiManagementClient(
        ManagedIdentityCredential(), SUB, base_url=emu.arm_url, connection_verify=str(emu.ca_bundle)
    )


def _final_body(poller: object) -> dict[str, object]:
    # The raw body of the last poll (the 200), as the SDK received it.
    response = poller.polling_method()._pipeline_response.http_response  # type: ignore[attr-defined]
    return dict(response.json())


def test_get_and_lists(mi_client: ApiManagementClient, emu: ApimEmulator) -> None:
    svc = mi_client.api_management_service.get(PROD_RG, PROD)
    assert svc.name == PROD
    assert svc.location == "West Europe"
    assert svc.sku.name == "Standard" and svc.sku.capacity == 1
    assert svc.tags is not None and svc.tags["apim-dr:backup"] == "true"
    assert svc.identity is not None and svc.identity.type == "SystemAssigned"
    assert svc.provisioning_state == "Succeeded" and svc.target_provisioning_state == ""
    assert svc.gateway_url == f"https://{PROD}.azure-api.net"
    assert svc.etag

    in_rg = [s.name for s in mi_client.api_management_service.list_by_resource_group(DR_RG)]
    assert in_rg == [DR]
    # Page through nextLink: two services per page.
    emu.admin.set_page_size(2)
    everywhere = sorted(s.name for s in mi_client.api_management_service.list())
    assert everywhere == sorted(s["name"] for s in emu.admin.services())
    assert len(everywhere) == 7
    lists = emu.admin.requests(method="GET", path_contains="/providers/Microsoft.ApiManagement/service")
    assert sum(1 for r in lists if "skiptoken" in r["query"]) == 3


def test_backup_writes_a_real_blob_and_restore_changes_the_standby(
    mi_client: ApiManagementClient, emu: ApimEmulator, blobs: BlobServiceClient, optional_spec: SpecValidator | None
) -> None:
    name = unique()
    before_dr = emu.admin.service(DR)
    poller = mi_client.api_management_service.begin_backup(
        PROD_RG,
        PROD,
        Params(
            storage_account=ACCOUNT,
            container_name=CONTAINER,
            backup_name=name,
            access_type="SystemAssignedManagedIdentity",
        ),
        polling_interval=1,
    )
    result = poller.result()
    assert poller.status() == "Succeeded"
    assert result.name == PROD and result.provisioning_state == "Succeeded"
    if optional_spec:
        optional_spec.validate(_final_body(poller), "ApiManagementServiceResource")

    snapshot = json.loads(blobs.get_blob_client(CONTAINER, name).download_blob().readall())
    prod = emu.admin.service(PROD)
    # Everything but the developer portal's content, which APIM's backup omits.
    assert snapshot["configuration"] == {k: v for k, v in prod["configuration"].items() if k != "contentTypes"}
    assert snapshot["sku"] == {"name": "Standard", "capacity": 1}
    assert snapshot["location"] == "West Europe"
    assert snapshot["serviceId"].endswith(f"/service/{PROD}")
    assert snapshot["createdAt"].endswith("Z")

    restore = mi_client.api_management_service.begin_restore(
        DR_RG,
        DR,
        Params(
            storage_account=ACCOUNT,
            container_name=CONTAINER,
            backup_name=name,
            access_type="SystemAssignedManagedIdentity",
        ),
        polling_interval=1,
    )
    restored = restore.result()
    assert restored.name == DR
    after_dr = emu.admin.service(DR)
    assert after_dr["configuration"] == prod["configuration"] != before_dr["configuration"]
    # Restore keeps what is not part of a backup: hostnames, identity, SKU, location, tags.
    for kept in ("hostnameConfigurations", "identity", "sku", "location", "tags"):
        assert after_dr[kept] == before_dr[kept], kept
    if optional_spec:
        optional_spec.validate(_final_body(restore), "ApiManagementServiceResource")

    # One POST each, and polls that follow Location.
    assert len(emu.admin.requests(method="POST", path_contains=f"/service/{PROD}/backup")) == 1
    assert len(emu.admin.requests(method="POST", path_contains=f"/service/{DR}/restore")) == 1
    assert emu.admin.requests(method="GET", path_contains=f"/service/{PROD}/operationresults/")
