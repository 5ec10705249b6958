"""Job IDs: deterministic per instance and slot, and validated wherever they come from."""

from datetime import UTC, datetime

import pytest

from dr_core.jobs.ids import JobKind, make_job_id, parse_job_id
from dr_core.kernel.ids import ApimResourceId

SUB = "00000000-0000-0000-0000-000000000001"


def rid(name="apim-one", rg="rg1", sub=SUB):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


def test_job_ids_are_deterministic_and_distinguish_instances():
    slot = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    a = make_job_id(JobKind.BACKUP, ApimResourceId.parse(rid()), slot)
    same = rid().replace("resourceGroups", "resourcegroups")
    same = same.replace("Microsoft.ApiManagement", "microsoft.apimanagement")
    assert a == make_job_id(JobKind.BACKUP, ApimResourceId.parse(same), slot)
    b = make_job_id(JobKind.BACKUP, ApimResourceId.parse(rid(rg="rg2")), slot)
    assert a != b and a.startswith("backup-20261122T020000Z-apim-one-")
    kind, parsed_slot = parse_job_id(a)
    assert kind is JobKind.BACKUP and parsed_slot == slot


@pytest.mark.parametrize("bad", ["", "backup-", "backup-20261122T020000Z-x-zzzzzzzz", "restore-2026-x-00000000",
                                 "backup-20261122T020000Z-a/b-00000000", "x" * 200, None, 5])
def test_bad_job_ids(bad):
    with pytest.raises(ValueError):
        parse_job_id(bad)
