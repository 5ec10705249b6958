"""Snapshot restore through the real path: the host stand-in, Azurite behind the blob front, the APIM emulator and
the official SDKs, with the ARM and storage roles infra/ grants. Every item kind goes round: snapshot, break or
delete, restore, and what the instance holds is what the snapshot held."""

from __future__ import annotations

import copy
import json
from typing import Any

from azure.storage.blob import BlobServiceClient

from dr_core.kernel.phases import JobState
from dr_core.snapshots.document import SnapshotDocument
from tests.e2e.conftest import E2E, PROD, STANDBY

PROD_RG = "rg-apim-prod"


def protect_prod(e2e: E2E) -> None:
    e2e.configure([{"resourceId": e2e.rid(PROD), "alias": "prod", "standby": e2e.rid(STANDBY),
                    "recovery": "snapshot"}])


def take_snapshot(e2e: E2E, service: str = PROD) -> str:
    assert e2e.host is not None
    record = e2e.host.fire_timer("plan_scheduled_backups")
    assert record.outcome == "success", record
    jobs = [j for j in e2e.all_jobs() if j.kind.value == "snapshot" and j.service_name == service]
    done = e2e.wait_terminal([j.job_id for j in jobs], timeout=120)
    assert [j.state for j in done] == [JobState.SUCCEEDED], [(j.error_code, j.error_message) for j in done]
    return done[0].blob_name


def document(e2e: E2E, blob_name: str) -> SnapshotDocument:
    assert e2e.stack.azurite is not None
    blobs = BlobServiceClient.from_connection_string(e2e.stack.azurite.connection_string(e2e.stack.backup_account))
    data = blobs.get_blob_client("apim-backups", blob_name).download_blob().readall()
    return SnapshotDocument.from_bytes(data)


def configuration(e2e: E2E, service: str) -> dict[str, Any]:
    return copy.deepcopy(e2e.admin.service(service)["configuration"])


def restore(e2e: E2E, body: dict[str, Any], snapshot: str = "latest") -> tuple[int, dict[str, Any]]:
    answer = e2e.http("POST", f"/api/snapshots/{snapshot}/restore", json=body)
    payload = answer.json()
    if answer.status_code != 202:
        return answer.status_code, payload
    job = e2e.wait_terminal([payload["operation"]["id"]], timeout=180)[0]
    return answer.status_code, job.public_view(now=job.updated_at)


def test_one_api_broken_by_hand_is_mended_by_a_one_api_restore_and_nothing_else_changes(e2e: E2E) -> None:
    protect_prod(e2e)
    blob = take_snapshot(e2e)
    snap = document(e2e, blob)
    assert snap.item("apis/orders-api") is not None
    before = configuration(e2e, PROD)
    broken = copy.deepcopy(before)
    orders = next(a for a in broken["apis"] if a["id"] == "orders-api")
    orders["path"] = "broken"
    orders["operations"] = orders["operations"][:1]
    other = next(a for a in broken["apis"] if a["id"] != "orders-api")
    other["displayName"] = "changed on purpose, and kept"
    e2e.admin.update_service(PROD, configuration=broken)

    code, refused = restore(e2e, {"target": "prod", "items": ["apis/orders-api"]})
    assert code == 409 and refused["error"]["code"] == "PreflightFailed"
    assert "target-is-not-source-or-primary" in refused["error"]["message"]

    code, view = restore(e2e, {"target": "prod", "items": ["apis/orders-api"], "confirm": PROD})
    assert code == 202 and view["state"] == "Succeeded", view.get("error")
    after = configuration(e2e, PROD)
    mended = next(a for a in after["apis"] if a["id"] == "orders-api")
    assert mended["path"] == orders["path"].replace("broken", next(a for a in before["apis"]
                                                                   if a["id"] == "orders-api")["path"])
    assert len(mended["operations"]) == len(next(a for a in before["apis"] if a["id"] == "orders-api")["operations"])
    assert next(a for a in after["apis"] if a["id"] == other["id"])["displayName"] == "changed on purpose, and kept"


def test_a_whole_snapshot_restored_into_the_standby_makes_it_hold_what_the_snapshot_held(e2e: E2E) -> None:
    protect_prod(e2e)
    blob = take_snapshot(e2e)
    snap = document(e2e, blob)
    # The standby lacks the secret named value whose value no snapshot holds: the plan is blocked, nothing changes.
    standby_before = configuration(e2e, STANDBY)
    code, view = restore(e2e, {"target": STANDBY, "source": "prod"})
    assert code == 202 and view["state"] == "Refused", view
    assert any(p["check"] == "secret-values-present" for p in view["configRestore"]["problems"])
    assert configuration(e2e, STANDBY) == standby_before
    # Someone creates the secrets by hand (as the runbook says); the same restore goes through.
    secrets = [n for n in snap.items if n.item_id.kind.key == "named-values" and n.properties.get("secret")
               and not n.properties.get("keyVault")]
    config = configuration(e2e, STANDBY)
    config.setdefault("namedValues", []).extend(
        {"id": s.item_id.name, "displayName": s.properties.get("displayName") or s.item_id.name,
         "value": "set-by-hand", "secret": True} for s in secrets)
    e2e.admin.update_service(STANDBY, configuration=config)
    code, view = restore(e2e, {"target": STANDBY, "source": "prod"})
    assert code == 202 and view["state"] == "Succeeded", view.get("error")
    progress = view["configRestore"]
    assert progress["applied"] == progress["steps"] > 0
    # A snapshot of the standby now holds what prod's held (references re-pointed, so the documents compare).
    e2e.configure([{"resourceId": e2e.rid(STANDBY), "recovery": "snapshot"}])
    standby_blob = take_snapshot(e2e, STANDBY)
    restored = document(e2e, standby_blob)
    wanted = {str(i.item_id): i.properties for i in snap.items}
    got = {str(i.item_id): i.properties for i in restored.items}
    assert set(got) == set(wanted), (sorted(set(wanted) - set(got)), sorted(set(got) - set(wanted)))
    different = sorted(k for k in wanted if got[k] != wanted[k])
    assert different == [], {k: (wanted[k], got[k]) for k in different[:3]}
    assert json.dumps(view).find("set-by-hand") == -1
