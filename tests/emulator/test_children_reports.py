"""Analytics reports over emulated usage (Reports_ListByApi, ByOperation, ByProduct, BySubscription, ByTime)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.apimanagement import ApiManagementClient
from emu_support import CONSUMPTION, PROD, PROD_RG, SERVICE_RGS, V2, RawArm, error_of, service_path

from emulator.apim import ApimEmulator

S = service_path(PROD)


@pytest.fixture(autouse=True)
def anyone_may_read(emu: ApimEmulator) -> None:
    emu.admin.set_arm_roles(None)


def window(emu: ApimEmulator, days: int = 3) -> str:
    now = dt.datetime.fromtimestamp(float(emu.admin.clock()["epoch"]), dt.UTC).replace(microsecond=0)
    start = (now - dt.timedelta(days=days)).replace(tzinfo=None).isoformat()
    return f"timestamp ge datetime'{start}' and timestamp le datetime'{now.replace(tzinfo=None).isoformat()}'"


def calls(record: Any, field: str = "call_count_total") -> int:
    value = getattr(record, field)
    assert isinstance(value, int), (field, value)
    return value


def totals(records: Any, key: str) -> Counter[str]:
    return Counter({str(getattr(r, key)): calls(r) for r in records})


def test_reports_by_api_operation_product_subscription_agree(client: ApiManagementClient, emu: ApimEmulator) -> None:
    from azure.mgmt.apimanagement import models as m

    client.subscription.create_or_update(PROD_RG, PROD, "starter-app", m.SubscriptionCreateParameters(
        scope="/products/starter", display_name="Starter app", state="active"))
    flt = window(emu)
    by_api = list(client.reports.list_by_api(PROD_RG, PROD, flt))
    assert {r.api_id for r in by_api} == {"/apis/orders-api", "/apis/customers-api", "/apis/echo-api"}
    assert all(calls(r) > 0 for r in by_api)
    assert all(calls(r) == calls(r, "call_count_success") + calls(r, "call_count_blocked")
               + calls(r, "call_count_failed") for r in by_api)
    assert list(client.reports.list_by_api(PROD_RG, PROD, flt)) == by_api  # the same question, the same figures
    by_operation = list(client.reports.list_by_operation(PROD_RG, PROD, flt))
    per_api: Counter[str] = Counter()
    for record in by_operation:
        per_api[str(record.api_id)] += calls(record)
    for record in by_api:  # rounding per record: within one call per operation
        assert abs(per_api[str(record.api_id)] - calls(record)) <= 3
    products = totals(client.reports.list_by_product(PROD_RG, PROD, flt), "product_id")
    assert set(products) == {"/products/starter", "/products/partners"}
    subscriptions = totals(client.reports.list_by_subscription(PROD_RG, PROD, flt), "subscription_id")
    assert set(subscriptions) == {"/subscriptions/master", "/subscriptions/fabrikam-partners",
                                  "/subscriptions/starter-app"}


def test_report_by_time_spreads_the_same_calls_over_buckets(client: ApiManagementClient, emu: ApimEmulator) -> None:
    flt = window(emu, days=2)
    hourly = list(client.reports.list_by_time(PROD_RG, PROD, flt, dt.timedelta(hours=1)))
    assert 48 <= len(hourly) <= 49
    assert [r.interval for r in hourly[:1]] == ["PT1H"]
    total = sum(calls(r) for r in client.reports.list_by_api(PROD_RG, PROD, flt))
    assert abs(sum(calls(r) for r in hourly) - total) <= len(hourly)
    busiest = max(calls(r) for r in hourly)
    quietest = min(calls(r) for r in hourly)
    assert busiest > 3 * quietest  # the daily curve


def test_filters_order_and_paging(raw: RawArm, emu: ApimEmulator) -> None:
    flt = window(emu)
    only = raw.request("GET", f"{S}/reports/byOperation?api-version=2024-05-01&$filter={flt} and apiId eq "
                              "'/apis/orders-api'", api_version=None).json()
    assert {r["apiId"] for r in only["value"]} == {"/apis/orders-api"} and only["count"] == 3
    ordered = raw.request("GET", f"{S}/reports/byApi?api-version=2024-05-01&$filter={flt}&$orderby=callCountTotal "
                                 "desc&$top=2", api_version=None).json()
    counts = [r["callCountTotal"] for r in ordered["value"]]
    assert counts == sorted(counts, reverse=True) and ordered["count"] == 3 and "nextLink" in ordered
    rest = raw.request("GET", ordered["nextLink"], api_version=None).json()
    assert len(rest["value"]) == 1 and rest["value"][0]["callCountTotal"] <= counts[-1]


def test_the_future_has_no_calls(raw: RawArm) -> None:
    flt = "timestamp ge datetime'2099-01-01T00:00:00' and timestamp le datetime'2099-01-02T00:00:00'"
    answer = raw.request("GET", f"{S}/reports/byApi?api-version=2024-05-01&$filter={flt}", api_version=None).json()
    assert {r["callCountTotal"] for r in answer["value"]} == {0}


@pytest.mark.parametrize(("query", "target"), [
    ("", "$filter"),
    ("&$filter=apiId eq 'x'", "$filter"),
    ("&$filter=timestamp ge datetime'nope' and timestamp le datetime'2024-01-01'", "$filter"),
    ("&$filter=name eq 'x'", "$filter"),
])
def test_a_report_needs_a_time_window(raw: RawArm, query: str, target: str) -> None:
    answer = raw.request("GET", f"{S}/reports/byApi?api-version=2024-05-01{query}", api_version=None)
    assert answer.status_code == 400 and answer.json()["error"]["details"][0]["target"] == target


def test_by_time_needs_a_15_minute_interval(raw: RawArm, emu: ApimEmulator) -> None:
    for interval in ("", "PT5M", "banana"):
        answer = raw.request("GET", f"{S}/reports/byTime?api-version=2024-05-01&$filter={window(emu)}"
                                    f"&interval={interval}", api_version=None)
        assert answer.status_code == 400 and answer.json()["error"]["details"][0]["target"] == "interval"


def test_consumption_and_v2_have_no_built_in_analytics(client: ApiManagementClient, emu: ApimEmulator) -> None:
    for name in (CONSUMPTION, V2):
        with pytest.raises(HttpResponseError) as refused:
            list(client.reports.list_by_api(SERVICE_RGS[name], name, window(emu)))
        assert error_of(refused.value).code == "MethodNotAllowedInPricingTier"
