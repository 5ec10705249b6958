"""The analytics reports (``Reports_ListByApi`` ... ``ListByTime``, apimreports.json) over emulated usage.

The emulator serves no gateway, so it makes usage up, deterministically: every operation of every
current API is called by every subscription that covers it (scope ``/apis``, ``/apis/{api}`` or a product
holding the API; an API no subscription covers gets anonymous calls) at a steady rate per day drawn from a
hash of their names, spread over the day by a fixed daily curve. A report sums that over the window of
its ``$filter`` (``timestamp ge datetime'...' and timestamp le datetime'...'``, up to the emulator's
clock), so the same question always gets the same figures, and configuration changes show at once.
Records look like the spec's examples (``ApiManagementGetReportsByApi``): ``name`` is the display name,
ids are short (``/apis/echo-api``). Deleted entities have no history: the emulator keeps none.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .contracts import split_revision
from .entity import Entity
from .errors import validation_error
from .views import Ctx

REPORTS = {"byapi": "byApi", "byoperation": "byOperation", "byproduct": "byProduct",
           "bysubscription": "bySubscription", "bytime": "byTime"}
# Share of a day's calls in each hour (UTC): quiet nights, a working-day hump.
HOURLY = (1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 8, 7, 8, 9, 9, 8, 6, 5, 4, 3, 2, 2, 1)
DAY = 86400.0
CLAUSE_RE = re.compile(
    r"^\s*(?:(?P<ts>timestamp)\s+(?P<op>ge|le)\s+datetime'(?P<when>[^']+)'|"
    r"(?P<field>apiId|operationId|productId|subscriptionId|userId|apiRegion)\s+eq\s+'(?P<value>[^']*)')\s*$",
    re.IGNORECASE,
)
DURATION_RE = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$")
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Stream:
    """Calls of one operation by one subscription (None: anonymous) at ``daily`` calls per day."""

    api: str
    api_name: str
    operation: str
    operation_name: str
    subscription: str | None
    subscription_name: str | None
    user: str | None
    product: str | None
    product_name: str | None
    daily: int
    seed: int


def _hash(*parts: str | None) -> int:
    return int(hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()[:12], 16)


def _calls(daily: float, start: float, end: float) -> float:
    """Calls at ``daily`` per day between two epochs, following the hourly curve."""
    if end <= start:
        return 0.0
    total = sum(HOURLY)
    whole_days = int((end - start) // DAY)
    calls = whole_days * daily
    t = start + whole_days * DAY
    while t < end:
        hour_end = min(end, (t // 3600 + 1) * 3600)
        hour = datetime.fromtimestamp(t, UTC).hour
        calls += daily * HOURLY[hour] / total * (hour_end - t) / 3600
        t = hour_end
    return calls


def _parse_when(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise validation_error("$filter", f"'{text}' is not a timestamp.") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_filter(text: str | None) -> tuple[float, float, dict[str, str]]:
    """The window and equality filters of a report's ``$filter`` (required: timestamp ge and le)."""
    if not text:
        raise validation_error("$filter", "$filter is required: timestamp ge datetime'...' and timestamp le "
                                          "datetime'...'.")
    start = end = None
    equals: dict[str, str] = {}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = CLAUSE_RE.match(clause)
        if match is None:
            raise validation_error("$filter", f"'{clause}' is not a supported filter (timestamp ge/le, or apiId, "
                                              "operationId, productId, subscriptionId, userId eq).")
        if match["ts"]:
            when = _parse_when(match["when"])
            if match["op"].lower() == "ge":
                start = when
            else:
                end = when
        else:
            equals[match["field"].lower()] = match["value"].rsplit("/", 1)[-1].lower()
    if start is None or end is None:
        raise validation_error("$filter", "$filter needs both timestamp ge datetime'...' and timestamp le "
                                          "datetime'...'.")
    if end < start:
        raise validation_error("$filter", "The window ends before it starts.")
    return start, end, equals


def parse_interval(text: str | None) -> float:
    match = DURATION_RE.match(text or "")
    if not text or match is None or not any(match.groupdict().values()):
        raise validation_error("interval", "interval is required, an ISO 8601 duration such as PT15M, PT1H or P1D.")
    seconds = (int(match["d"] or 0) * 86400 + int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60
               + int(match["s"] or 0))
    if seconds < 900 or seconds % 900:
        raise validation_error("interval", "interval must be a multiple of 15 minutes (PT15M).")
    return float(seconds)


def streams(ctx: Ctx) -> list[Stream]:
    """Who calls what, from the configuration as it is now."""
    view = ctx.view
    apis = {e.name.lower(): e for e in view.children("", "apis")}
    products = {e.name.lower(): e for e in view.children("", "products")}
    api_products: dict[str, list[str]] = defaultdict(list)
    for product in products.values():
        for link in view.children(product.path, "products/apis"):
            api_products[split_revision(link.name)[0].lower()].append(product.name.lower())
    covering: dict[str, list[tuple[Entity | None, str | None]]] = defaultdict(list)
    for sub in view.children("", "subscriptions"):
        scope = str(sub.props.get("scope", "")).lower()
        parts = [p for p in scope.split("/") if p]
        if parts == ["apis"]:
            for api_key in apis:
                covering[api_key].append((sub, None))
        elif len(parts) == 2 and parts[0] == "apis":
            covering[parts[1]].append((sub, None))
        elif len(parts) == 2 and parts[0] == "products":
            for api_key, holders in api_products.items():
                if parts[1] in holders:
                    covering[api_key].append((sub, parts[1]))
    found = []
    for key, api in apis.items():
        for operation in view.children(api.path, "apis/operations"):
            callers = covering.get(key) or [(None, None)]
            for caller, via in callers:
                sub_name = caller.name if caller is not None else None
                owner = None
                if caller is not None:
                    owner = str(caller.props.get("ownerId", "")).rsplit("/", 1)[-1] or None
                seed = _hash(ctx.service.name, api.name, operation.name, sub_name)
                product_entity = products.get(via) if via else None
                found.append(Stream(
                    api.name, str(api.props.get("displayName", api.name)), operation.name,
                    str(operation.props.get("displayName", operation.name)), sub_name,
                    str(caller.props.get("displayName", sub_name)) if caller is not None else None, owner,
                    product_entity.name if product_entity else None,
                    str(product_entity.props.get("displayName")) if product_entity else None,
                    1 + seed % 500, seed,
                ))
    return found


def _record(stream_calls: list[tuple[Stream, float]], **ids: Any) -> dict[str, Any]:
    total = sum(calls for _, calls in stream_calls)
    calls = round(total)
    blocked = round(sum(c * 0.02 for _, c in stream_calls))
    failed = round(sum(c * (0.005 + (s.seed % 3) / 200) for s, c in stream_calls))
    weighted = [(s, c) for s, c in stream_calls if c > 0]
    api_times = [50.0 + s.seed % 400 for s, _ in weighted]
    api_avg = sum((50.0 + s.seed % 400) * c for s, c in weighted) / total if total else 0.0
    record = {
        **ids,
        "callCountSuccess": max(0, calls - blocked - failed),
        "callCountBlocked": blocked,
        "callCountFailed": failed,
        "callCountOther": 0,
        "callCountTotal": calls,
        "bandwidth": round(sum(c * (500 + s.seed % 2000) for s, c in stream_calls)),
        "cacheHitCount": 0,
        "cacheMissCount": 0,
        "apiTimeAvg": round(api_avg, 4),
        "apiTimeMin": round(min(api_times) * 0.3, 4) if api_times else 0.0,
        "apiTimeMax": round(max(api_times) * 2.5, 4) if api_times else 0.0,
        "serviceTimeAvg": round(api_avg * 0.85, 4),
        "serviceTimeMin": round(min(api_times) * 0.25, 4) if api_times else 0.0,
        "serviceTimeMax": round(max(api_times) * 2.1, 4) if api_times else 0.0,
    }
    return record


def report(ctx: Ctx, which: str, query: dict[str, str], now: float) -> list[dict[str, Any]]:
    """Every record of one report (the caller pages them)."""
    start, end, equals = parse_filter(query.get("$filter"))
    end = min(end, now)
    selected = [
        s for s in streams(ctx)
        if ("apiid" not in equals or s.api.lower() == equals["apiid"])
        and ("operationid" not in equals or s.operation.lower() == equals["operationid"])
        and ("productid" not in equals or (s.product or "").lower() == equals["productid"])
        and ("subscriptionid" not in equals or (s.subscription or "").lower() == equals["subscriptionid"])
        and ("userid" not in equals or (s.user or "").lower() == equals["userid"])
    ]
    if which == "bytime":
        interval = parse_interval(query.get("interval"))
        buckets = int((end - start) // interval) + 1 if end > start else 0
        if buckets > MAX_BUCKETS:
            raise validation_error("interval", f"The window holds more than {MAX_BUCKETS} intervals.")
        records = []
        for index in range(buckets):
            lower = start + index * interval
            upper = min(end, lower + interval)
            calls = [(s, _calls(s.daily, lower, upper)) for s in selected]
            record = _record(calls, timestamp=datetime.fromtimestamp(lower, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                             interval=query.get("interval"))
            records.append(record)
        return records
    groups: dict[tuple[Any, ...], list[tuple[Stream, float]]] = defaultdict(list)
    names: dict[tuple[Any, ...], dict[str, Any]] = {}
    for s in selected:
        if which == "byapi":
            key: tuple[Any, ...] = (s.api,)
            names[key] = {"name": s.api_name, "apiId": f"/apis/{s.api}"}
        elif which == "byoperation":
            key = (s.api, s.operation)
            names[key] = {"name": s.operation_name, "apiId": f"/apis/{s.api}",
                          "operationId": f"/apis/{s.api}/operations/{s.operation}"}
        elif which == "byproduct":
            if s.product is None:
                continue
            key = (s.product,)
            names[key] = {"name": s.product_name, "productId": f"/products/{s.product}"}
        else:  # bysubscription
            if s.subscription is None:
                continue
            key = (s.subscription,)
            names[key] = {"name": s.subscription_name, "subscriptionId": f"/subscriptions/{s.subscription}",
                          "userId": f"/users/{s.user}" if s.user else None,
                          "productId": f"/products/{s.product}" if s.product else None}
        groups[key].append((s, _calls(s.daily, start, end)))
    return [_record(calls, **names[key]) for key, calls in groups.items()]


def order(records: list[dict[str, Any]], orderby: str | None) -> list[dict[str, Any]]:
    if not orderby:
        return records
    field, _, direction = orderby.strip().partition(" ")
    if not records or field not in records[0]:
        raise validation_error("$orderby", f"'{field}' cannot order this report.")
    return sorted(records, key=lambda r: (r[field] is None, r[field]), reverse=direction.strip().lower() == "desc")
