"""A request ARM handled whose answer never reached the client (fault kind ``drop_answer``).

What the official client does then (azure-core's RetryPolicy, see emulator/README.md "Faults"):

- the connection closes without an answer -> ``ServiceResponseError``; a POST is not retried (only
  HEAD/GET/PUT/DELETE/OPTIONS/TRACE are, on errors without a response), so the caller sees the error
  although the operation is running;
- 500/503/504 instead of the 202 -> the SDK re-sends the POST at once, which meets ``409 ServiceLocked``
  from the operation the first POST started (``ResourceExistsError``);
- 502 (or 408/429) without Retry-After -> not retried for a POST; any status with Retry-After is.

Either way exactly one operation exists: a caller that takes the error for "nothing started" and
POSTs again later would start a second one.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import ApiManagementServiceBackupRestoreParameters as Params
from emu_support import ACCOUNT, CONTAINER, DR, DR_RG, PROD, PROD_RG, RawArm, key_body, service_path, unique

from emulator.apim import ApimEmulator
from emulator.apim.admin import EmulatorAdminError

TARGETS = {"backup": (PROD_RG, PROD), "restore": (DR_RG, DR)}


def _params() -> Params:
    return Params(
        storage_account=ACCOUNT,
        container_name=CONTAINER,
        backup_name=unique(),
        access_type="SystemAssignedManagedIdentity",
    )


def _begin(client: ApiManagementClient, kind: str) -> Any:
    """The POST alone, as dr_core/azure/arm.py sends it: ``begin_*(..., polling=False)``, raw pipeline response."""
    rg, name = TARGETS[kind]
    method = getattr(client.api_management_service, f"begin_{kind}")
    poller = method(rg, name, _params(), polling=False, cls=lambda pipeline_response, _d, _h: pipeline_response)
    return poller.result()


def _posts(emu: ApimEmulator, kind: str) -> list[dict[str, Any]]:
    _, name = TARGETS[kind]
    return emu.admin.requests(method="POST", path_contains=f"/service/{name}/{kind}")


def _slow(emu: ApimEmulator, kind: str) -> None:
    # Long enough that every retry below meets the running operation.
    emu.admin.set_op_duration(60, service=TARGETS[kind][1])


@pytest.mark.parametrize("kind", ["backup", "restore"])
def test_closed_connection_after_the_post_is_not_retried_and_the_operation_runs(
    emu: ApimEmulator, client: ApiManagementClient, kind: str
) -> None:
    _slow(emu, kind)
    emu.admin.drop_answer(on=kind, then="close")
    with pytest.raises(ServiceResponseError) as lost:
        _begin(client, kind)
    assert "RemoteDisconnected" in repr(lost.value.inner_exception)
    # The SDK did not re-send: one POST, handled (202), its answer dropped; one operation running.
    posts = _posts(emu, kind)
    assert [(p["status"], p["droppedAnswer"]) for p in posts] == [(202, "close")]
    (op,) = emu.admin.operations(service=TARGETS[kind][1])
    assert op["status"] == "Running" and op["kind"] == kind
    assert emu.admin.service(TARGETS[kind][1])["provisioningState"] == "Updating"
    # The caller's own retry meets the operation its first POST started.
    with pytest.raises(ResourceExistsError) as locked:
        _begin(client, kind)
    assert locked.value.error is not None and locked.value.error.code == "ServiceLocked"
    assert [p["status"] for p in _posts(emu, kind)] == [202, 409]
    assert len(emu.admin.operations(service=TARGETS[kind][1])) == 1


@pytest.mark.parametrize("kind", ["backup", "restore"])
@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx_instead_of_the_202_makes_the_sdk_retry_into_409_service_locked(
    emu: ApimEmulator, client: ApiManagementClient, kind: str, status: int
) -> None:
    _slow(emu, kind)
    emu.admin.drop_answer(on=kind, then=status)
    with pytest.raises(ResourceExistsError) as locked:
        _begin(client, kind)
    assert locked.value.status_code == 409
    assert locked.value.error is not None and locked.value.error.code == "ServiceLocked"
    posts = _posts(emu, kind)
    assert [(p["status"], p.get("droppedAnswer")) for p in posts] == [(202, status), (409, None)]
    (op,) = emu.admin.operations(service=TARGETS[kind][1])
    assert op["status"] == "Running" and op["kind"] == kind


def test_502_is_not_retried_for_a_post_unless_it_carries_retry_after(
    emu: ApimEmulator, client: ApiManagementClient
) -> None:
    _slow(emu, "backup")
    emu.admin.drop_answer(on="backup", then=502)
    with pytest.raises(HttpResponseError) as bad_gateway:
        _begin(client, "backup")
    assert bad_gateway.value.status_code == 502
    assert [p["status"] for p in _posts(emu, "backup")] == [202]

    # With Retry-After any status is retried, whatever the method: the retry meets the running operation.
    emu.admin.set_op_duration(60, service=DR)
    emu.admin.drop_answer(on="restore", then=502, retry_after=1)
    with pytest.raises(ResourceExistsError):
        _begin(client, "restore")
    assert [p["status"] for p in _posts(emu, "restore")] == [202, 409]
    assert len(emu.admin.operations()) == 2


def test_substituted_answer_carries_an_apim_error_and_no_location(emu: ApimEmulator, raw: RawArm) -> None:
    _slow(emu, "backup")
    emu.admin.drop_answer(on="backup", then=503, message="Upstream timed out.")
    answer = raw.start("backup", PROD, key_body(unique()))
    assert answer.status_code == 503
    assert answer.json() == {
        "error": {"code": "ServiceUnavailable", "message": "Upstream timed out.", "details": None, "innerError": None}
    }
    assert "Location" not in answer.headers and "Retry-After" not in answer.headers
    assert answer.headers["x-ms-request-id"]
    assert emu.admin.operations(service=PROD)[0]["status"] == "Running"
    assert emu.admin.faults() == []


def test_lost_poll_answer_is_retried_by_the_sdk(emu: ApimEmulator, client: ApiManagementClient) -> None:
    started = _begin(client, "backup")
    location = started.http_response.headers["Location"]
    emu.admin.drop_answer(on="poll", then="close")
    # GET is retried on a lost answer (a read error): the caller never notices.
    answer = client._client.send_request(HttpRequest("GET", location))
    assert answer.status_code in (200, 202)
    polls = emu.admin.requests(method="GET", path_contains="/operationresults/")
    assert [p.get("droppedAnswer") for p in polls] == ["close", None]


def test_drop_answer_only_for_its_service_and_count(emu: ApimEmulator, raw: RawArm) -> None:
    emu.admin.drop_answer(on="get", then=500, service=DR, count=2)
    assert raw.request("GET", service_path(PROD)).status_code == 200
    assert raw.request("GET", service_path(DR)).status_code == 500
    (fault,) = emu.admin.faults()
    assert fault["kind"] == "drop_answer" and fault["then"] == 500 and fault["count"] == 1
    assert raw.request("GET", service_path(DR)).status_code == 500
    assert raw.request("GET", service_path(DR)).status_code == 200
    assert emu.admin.faults() == []


@pytest.mark.parametrize("then", ["reset", 200, 302, True, "503"])
def test_drop_answer_rejects_other_thens(emu: ApimEmulator, then: Any) -> None:
    with pytest.raises(EmulatorAdminError, match="then must be"):
        emu.admin.set_fault("drop_answer", on="backup", then=then)
