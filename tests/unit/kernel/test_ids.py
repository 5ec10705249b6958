"""APIM resource IDs: parsed and validated in one place, compared case-insensitively."""

import pytest

from dr_core.kernel.ids import ApimResourceId, InvalidResourceIdError

SUB = "00000000-0000-0000-0000-000000000001"


def rid(name="apim-one", rg="rg1", sub=SUB):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


def test_resource_id_round_trip_and_case_insensitive_key():
    a = ApimResourceId.parse(rid())
    b = ApimResourceId.parse(rid().replace("resourceGroups", "RESOURCEGROUPS").replace("Microsoft", "microsoft"))
    assert str(a) == rid() and a.key == b.key


@pytest.mark.parametrize("bad", [
    None, 42, "", "apim-one", rid(name="1bad"), rid(name="bad_name!"), rid(name="a" * 51), rid(name="ends-"),
    rid(sub="not-a-guid"), rid(rg="x" * 91), rid(rg="bad/rg"), rid() + "/apis/x", "/" * 1000,
    rid().replace("Microsoft.ApiManagement", "Microsoft.Web"), rid(name="x%2F..%2F"),
])
def test_bad_resource_ids_name_the_problem(bad):
    with pytest.raises(InvalidResourceIdError):
        ApimResourceId.parse(bad)
