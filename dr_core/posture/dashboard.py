"""The status page: one self-contained HTML document rendered from the ``/api/status`` document.

:func:`render_dashboard` is a pure function of the status document and ``now``. The page needs
nothing else: its CSS is inline (allowed by its hash in :data:`CONTENT_SECURITY_POLICY`), it
has no script, no images, no web fonts and no links to fetch, so it works offline and behind
the strictest policy (``default-src 'none'``).

Every value taken from the status document is untrusted text: instance names, ARM error
messages and remediations can carry markup, quotes, bidi overrides or megabytes. Each is
cleaned (control characters and lone surrogates replaced, length capped), HTML-escaped and
isolated (``<bdi>``), and a field of the wrong type renders as "–" instead of failing the page.
Meaning never rests on color alone: every state has a word and a glyph.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from dr_core.kernel.clock import from_iso, utc

__all__ = ["CONTENT_SECURITY_POLICY", "TIMELINE_DAYS", "page_headers", "render_dashboard"]

TIMELINE_DAYS = 30
_MAX_FAILURES_SHOWN = 5
_NAME_LIMIT = 120
_TEXT_LIMIT = 600
_NONE = "–"

_CSS = """
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#fff;--line:#d0d7de;--ok:#1a7f37;--warn:#9a6700;
--bad:#cf222e;--unk:#6e7781;--okbg:#dafbe1;--warnbg:#fff8c5;--badbg:#ffebe9;--unkbg:#eaeef2;--none:#d0d7de}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--line:#30363d;--ok:#3fb950;
--warn:#d29922;--bad:#f85149;--unk:#9198a1;--okbg:#12261e;--warnbg:#272115;--badbg:#301a1f;--unkbg:#21262d;
--none:#30363d}}
*{box-sizing:border-box}
body{margin:0;padding:1rem 1.25rem 2rem;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
p{margin:.25rem 0}.muted,small{color:var(--muted)}
bdi,code{overflow-wrap:anywhere}time{white-space:nowrap}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.overall{display:inline-block;margin:.5rem 0;padding:.4rem .75rem;border-radius:6px;font-weight:600;
border:1px solid var(--line)}
.badge{display:inline-block;padding:0 .4rem;border-radius:4px;font-weight:600;white-space:nowrap}
.s-ok .badge,.overall.s-ok{background:var(--okbg);color:var(--ok)}
.s-at-risk .badge,.overall.s-at-risk,.overall.s-attention{background:var(--warnbg);color:var(--warn)}
.s-breached .badge,.overall.s-breached{background:var(--badbg);color:var(--bad)}
.s-unknown .badge,.overall.s-unknown{background:var(--unkbg);color:var(--unk)}
.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;min-width:1100px}
th,td{text-align:left;vertical-align:top;padding:.5rem;border-bottom:1px solid var(--line)}
thead th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line)}
tbody th{font-weight:600;width:14%;border-left:4px solid var(--unk)}
tr.s-ok th{border-left-color:var(--ok)}tr.s-at-risk th{border-left-color:var(--warn)}
tr.s-breached th{border-left-color:var(--bad)}
td:nth-child(2){min-width:150px}td:nth-child(4),td:nth-child(5){min-width:170px}td:nth-child(6){min-width:300px}
.tl{display:flex;gap:1px;list-style:none;margin:0 0 .25rem;padding:0}
.tl li{width:13px;height:18px;line-height:18px;text-align:center;font-size:10px;border-radius:2px;
color:#fff;background:var(--none)}
.tl .r{background:var(--ok)}.tl .n{background:var(--warn)}.tl .x{color:var(--muted)}
.fail{margin:.25rem 0 0;padding:.4rem .5rem;border-left:3px solid var(--bad);background:var(--badbg)}
.fail p{margin:.1rem 0}.fix{font-weight:600}
ul.plain{margin:0;padding:0;list-style:none}ul.plain>li+li{margin-top:.4rem}
.problems li{margin:.2rem 0}
.warn{color:var(--warn);font-weight:600}.bad{color:var(--bad);font-weight:600}.good{color:var(--ok);font-weight:600}
footer{margin-top:1.5rem;color:var(--muted);font-size:12px}
""".strip()

_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; script-src 'none'; img-src 'none'; "
    "font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page_headers() -> dict[str, str]:
    """Response headers of the page: the policy above, no sniffing, no caching, never framed or referred."""
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


# -- untrusted values --------------------------------------------------------------------------------
# Control characters, lone surrogates (not encodable) and bidi controls (they can make
# "gnp.exe" read as "exe.png"); each becomes U+FFFD, so the reader sees that something was there.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
                      "\ud800-\udfff]")


def _clean(value: object, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _CONTROL.sub("\ufffd", text)


def _t(value: object, limit: int = _TEXT_LIMIT) -> str:
    """Untrusted text as escaped, bidi-isolated HTML; "–" for nothing."""
    text = _clean(value, limit)
    return f"<bdi>{html.escape(text)}</bdi>" if text else _NONE


def _attr(text: str) -> str:
    return html.escape(_clean(text, _TEXT_LIMIT), quote=True)


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _service_name(resource_id: object) -> str:
    """The last segment of a resource ID (``.../service/{name}``), or the text itself."""
    text = resource_id if isinstance(resource_id, str) else ""
    return text.rstrip("/").rsplit("/", 1)[-1]


# -- formatting -----------------------------------------------------------------------------------------
def _hours(hours: float) -> str:
    """A span of hours in the unit a person would say; a no-break space keeps number and unit together."""
    hours = float(hours)
    if hours.is_integer() and 1 <= hours < 48:
        return f"{int(hours)}\u00a0h"
    if hours < 1:
        return f"{max(0, round(hours * 60))}\u00a0min"
    if hours < 48:
        return f"{hours:.1f}\u00a0h"
    return f"{hours / 24:.1f}\u00a0days"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}\u00a0s"
    if seconds < 3600:
        return f"{int(seconds // 60)}\u00a0min {int(seconds % 60):02d}\u00a0s"
    return f"{int(seconds // 3600)}\u00a0h {int(seconds % 3600 // 60):02d}\u00a0min"


def _time(value: object, now: datetime) -> str:
    """A moment as ``2026-11-30 02:00 UTC (5.0 h ago)``; "–" if it is not one."""
    moment = from_iso(value)
    if moment is None:
        return _NONE
    delta = (now - moment).total_seconds() / 3600
    relative = f"{_hours(delta)} ago" if delta >= 0 else f"in {_hours(-delta)}"
    return f'<time datetime="{moment:%Y-%m-%dT%H:%M:%SZ}">{moment:%Y-%m-%d %H:%M} UTC</time> ({relative})'


# -- states ---------------------------------------------------------------------------------------------
# RPO state -> (label, glyph, rank): the lower the rank, the sooner a person must look.
_RPO_STATES = {
    "breached": ("Breached", "✗", 0),
    "at-risk": ("At risk", "!", 1),
    "unknown": ("Unknown", "?", 2),
    "ok": ("OK", "✓", 3),
}


def _rpo_state(rpo: Mapping[str, Any]) -> str:
    state = rpo.get("state")
    return state if isinstance(state, str) and state in _RPO_STATES else "unknown"


def _badge(state: str, extra: str = "") -> str:
    label, glyph, _ = _RPO_STATES[state]
    return f'<span class="badge">{glyph} {label}{extra}</span>'


def _needs_attention(inst: Mapping[str, Any]) -> bool:
    """Something failed that the RPO state alone does not show: a job, the standby sync, the last drill."""
    if _list(inst.get("openFailures")):
        return True
    standby = _dict(inst.get("standby"))
    if standby.get("error") or standby.get("state") in ("Failed", "Refused"):
        return True
    return _dict(inst.get("lastDrill")).get("state") == "failed"


def _display_name(inst: Mapping[str, Any]) -> str:
    for key in ("alias", "serviceName"):
        value = inst.get(key)
        if isinstance(value, str) and value:
            return value
    return _service_name(inst.get("instance")) or "?"


# -- sections -------------------------------------------------------------------------------------------
def _failure(failure: Mapping[str, Any], now: datetime, *, title: str) -> str:
    code = failure.get("errorCode") or failure.get("code")
    parts = [f'<div class="fail"><p><span class="bad">✗ {title}</span>']
    if code:
        parts.append(f" <code>{_t(code, _NAME_LIMIT)}</code>")
    if failure.get("at"):
        parts.append(f" · {_time(failure.get('at'), now)}")
    parts.append("</p>")
    if failure.get("message"):
        parts.append(f"<p>{_t(failure.get('message'))}</p>")
    remediation = failure.get("remediation")
    parts.append(f'<p><span class="fix">What to do:</span> {_t(remediation) if remediation else "see the job"}</p>')
    if failure.get("jobId"):
        parts.append(f"<p><small>job {_t(failure.get('jobId'), _NAME_LIMIT)}</small></p>")
    parts.append("</div>")
    return "".join(parts)


def _rpo_cell(rpo: Mapping[str, Any], now: datetime) -> str:
    state = _rpo_state(rpo)
    raw = rpo.get("state")
    extra = f" ({_t(raw, 40)})" if raw not in _RPO_STATES and raw else ""
    out = [_badge(state, extra)]
    target = _number(rpo.get("targetHours"))
    newest = _dict(rpo.get("newestRestorable"))
    age = _number(newest.get("ageHours"))
    if age is None and from_iso(newest.get("createdAt")) is not None:
        created = from_iso(newest.get("createdAt"))
        assert created is not None
        age = (now - created).total_seconds() / 3600
    # Targets are set in whole hours (rpoHours): say them the way they were configured.
    target_text = "no target" if target is None else (
        f"target {int(target)}\u00a0h" if target.is_integer() and target >= 1 else f"target {_hours(target)}")
    if newest:
        age_text = _hours(age) if age is not None else _NONE
        out.append(f"<p>newest restorable backup {age_text} old, {target_text}</p>")
        out.append(f"<p><small>{_time(newest.get('createdAt'), now)}</small></p>")
    else:
        out.append(f"<p>no restorable backup, {target_text}</p>")
    if rpo.get("since"):
        out.append(f"<p><small>{_RPO_STATES[state][0].lower()} since {_time(rpo.get('since'), now)}</small></p>")
    return "".join(out)


def _day(day: date) -> str:
    return f"{day:%b} {day.day}"


def _day_ranges(days: list[date]) -> str:
    """``Nov 3, Nov 10 – Nov 12``: consecutive days as one range."""
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(_day(r[0]) if len(r) == 1 else f"{_day(r[0])} – {_day(r[-1])}" for r in runs)


def _days(backups: list[Any], first: date) -> tuple[list[int], list[int], list[str | None], datetime | None]:
    """Per UTC day from ``first``: restorable backups, other backups, why one was not restorable; the newest."""
    restorable = [0] * TIMELINE_DAYS
    other = [0] * TIMELINE_DAYS
    reason: list[str | None] = [None] * TIMELINE_DAYS
    newest: datetime | None = None
    for backup in backups:
        entry = _dict(backup)
        created = from_iso(entry.get("createdAt"))
        if created is None:
            continue
        newest = created if newest is None or created > newest else newest
        index = (created.date() - first).days
        if not 0 <= index < TIMELINE_DAYS:
            continue
        if entry.get("restorable") is True:
            restorable[index] += 1
        else:
            other[index] += 1
            because = entry.get("notRestorableBecause")
            reason[index] = reason[index] or (because if isinstance(because, str) else None)
    return restorable, other, reason, newest


def _timeline_cell(backups: list[Any], now: datetime) -> str:
    """One mark per UTC day (a picture, hidden from screen readers), then the same in words."""
    first = now.date() - timedelta(days=TIMELINE_DAYS - 1)
    restorable, other, reason, newest = _days(backups, first)
    cells = []
    missing: list[date] = []
    unusable: list[tuple[date, str | None]] = []
    for i in range(TIMELINE_DAYS):
        if restorable[i]:
            cells.append('<li class="r">✓</li>')
        elif other[i]:
            cells.append('<li class="n">✗</li>')
            unusable.append((first + timedelta(days=i), reason[i]))
        else:
            cells.append('<li class="x">·</li>')
            missing.append(first + timedelta(days=i))
    good = TIMELINE_DAYS - len(missing) - len(unusable)
    out = [f'<ol class="tl" aria-hidden="true">{"".join(cells)}</ol>']
    if good + len(unusable) == 0:
        before = f" (newest {_time(newest, now)})" if newest is not None else ""
        out.append(f"<p>No backups in the last {TIMELINE_DAYS} days{before}.</p>")
        return "".join(out)
    out.append(f"<p><small>{good} of {TIMELINE_DAYS} days with a restorable backup; "
               f"newest {_time(newest, now)}</small></p>")
    if missing:
        out.append(f"<p><small>no backup: {_day_ranges(missing)}</small></p>")
    if unusable:
        shown = "; ".join(_day(d) + (f" ({_t(why, 200)})" if why else "") for d, why in unusable[:3])
        more = f"; and {len(unusable) - 3} more days" if len(unusable) > 3 else ""
        out.append(f"<p><small>backups, none restorable: {shown}{more}</small></p>")
    return "".join(out)


def _standby_cell(standby: Mapping[str, Any] | None, target_hours: float | None, now: datetime) -> str:
    if standby is None:
        return '<span class="muted">no standby</span>'
    out = [f"<p>{_t(_service_name(standby.get('instance')) or None, _NAME_LIMIT)}</p>"]
    if standby.get("sync") is not True:
        out.append('<p class="muted">sync off</p>')
        return "".join(out)
    lag = _number(standby.get("lagHours"))
    if lag is None:
        out.append('<p class="warn">! never synced</p>')
    else:
        late = target_hours is not None and lag > target_hours
        out.append(f'<p class="{"warn" if late else "good"}">{"!" if late else "✓"} lag {_hours(lag)}</p>')
    if standby.get("state"):
        out.append(f"<p><small>last sync {_t(standby.get('state'), 40)}</small></p>")
    last = _dict(standby.get("lastSucceeded"))
    if last:
        out.append(f"<p><small>synced {_time(last.get('finishedAt'), now)}</small></p>")
    error = _dict(standby.get("error"))
    if error:
        out.append(_failure(error, now, title="sync failed"))
    return "".join(out)


def _copy_note(copy: object, target_hours: float | None, now: datetime) -> str:
    """The second-region copy under the RPO: its lag (what a restore from the copy would lose), or why not."""
    if not isinstance(copy, Mapping):
        return ""
    account = _t(copy.get("account"), 64)
    lag = _number(copy.get("lagHours"))
    error = _dict(copy.get("error"))
    if lag is None:
        line = f'<p class="warn">! copy in {account}: none yet</p>'
    else:
        late = copy.get("behind") is True or (target_hours is not None and lag > target_hours)
        behind = " (newest backup not copied yet)" if copy.get("behind") is True else ""
        line = (f'<p class="{"warn" if late else "good"}">{"!" if late else "✓"} copy in {account}: '
                f"lag {_hours(lag)}{behind}</p>")
    if error:
        line += _failure({**error, "at": copy.get("errorAt")}, now, title="copy failed")
    return line


def _drill_cell(drill: Mapping[str, Any] | None, now: datetime) -> str:
    if drill is None:
        return '<span class="muted">no drill yet</span>'
    state = drill.get("state")
    if state == "passed":
        out = ['<p class="good">✓ passed</p>']
    elif state == "failed":
        out = ['<p class="bad">✗ failed</p>']
    else:
        out = [f"<p>… {_t(state, 40) if state else 'unknown'}</p>"]
    rto = _number(drill.get("rtoSeconds"))
    rpo = _number(drill.get("rpoHoursAtDrill"))
    out.append(f"<p>RTO {_duration(rto) if rto is not None else _NONE} · "
               f"RPO at drill {_hours(rpo) if rpo is not None else _NONE}</p>")
    out.append(f"<p><small>{_time(drill.get('finishedAt'), now)}</small></p>")
    if drill.get("target"):
        out.append(f"<p><small>into {_t(_service_name(drill.get('target')) or None, _NAME_LIMIT)}</small></p>")
    error = _dict(drill.get("error"))
    if error:
        out.append(_failure(error, now, title="drill failed"))
    return "".join(out)


def _failures_cell(failures: list[Any], now: datetime) -> str:
    if not failures:
        return '<span class="muted">none</span>'
    items = []
    for failure in failures[:_MAX_FAILURES_SHOWN]:
        entry = _dict(failure)
        kind = _clean(entry.get("kind"), 20) or "job"
        state = _clean(entry.get("state"), 20) or "failed"
        items.append(f"<li>{_failure(entry, now, title=html.escape(f'{kind} {state}'))}</li>")
    more = len(failures) - _MAX_FAILURES_SHOWN
    if more > 0:
        items.append(f"<li><small>and {more} more</small></li>")
    return f'<ul class="plain">{"".join(items)}</ul>'


def _instance_row(inst: Mapping[str, Any], now: datetime) -> str:
    rpo = _dict(inst.get("rpo"))
    state = _rpo_state(rpo)
    name = _display_name(inst)
    service = inst.get("serviceName")
    sub = ""
    if isinstance(service, str) and service and service != name:
        sub = f"<br><small>{_t(service, _NAME_LIMIT)}</small>"
    resource = inst.get("instance")
    title = f' title="{_attr(resource)}"' if isinstance(resource, str) else ""
    standby = inst.get("standby")
    standby = standby if isinstance(standby, Mapping) else None
    drill = inst.get("lastDrill")
    drill = drill if isinstance(drill, Mapping) else None
    return (
        f'<tr class="s-{state}"><th scope="row"{title}>{_t(name, _NAME_LIMIT)}{sub}</th>'
        f"<td>{_rpo_cell(rpo, now)}{_copy_note(inst.get('copy'), _number(rpo.get('targetHours')), now)}</td>"
        f"<td>{_timeline_cell(_list(inst.get('backups')), now)}</td>"
        f"<td>{_standby_cell(standby, _number(rpo.get('targetHours')), now)}</td>"
        f"<td>{_drill_cell(drill, now)}</td>"
        f"<td>{_failures_cell(_list(inst.get('openFailures')), now)}</td></tr>"
    )


def _overall(instances: list[Mapping[str, Any]], problems: int) -> tuple[str, str]:
    """(state class, sentence) for the whole fleet."""
    if not instances:
        return "unknown", "No protected instances"
    counts = {s: 0 for s in _RPO_STATES}
    for inst in instances:
        counts[_rpo_state(_dict(inst.get("rpo")))] += 1
    attention = sum(1 for inst in instances if _needs_attention(inst))
    total = len(instances)
    if counts["breached"]:
        return "breached", f"✗ Breached: {counts['breached']} of {total} instances past their RPO target"
    if counts["at-risk"]:
        return "at-risk", f"! At risk: {counts['at-risk']} of {total} instances close to their RPO target"
    if counts["unknown"] or attention or problems:
        return "attention", "! Needs attention"
    return "ok", f"✓ All {total} instances within their RPO target"


def _sort_key(inst: Mapping[str, Any]) -> tuple[int, int, str]:
    rank = _RPO_STATES[_rpo_state(_dict(inst.get("rpo")))][2]
    return rank, 0 if _needs_attention(inst) else 1, _display_name(inst).lower()


def render_dashboard(status: Mapping[str, Any], *, now: datetime) -> str:
    """The status page for a ``/api/status`` document: one HTML string, no external resources.

    Instances are listed most urgent first (breached, at risk, unknown, ok; failures first
    within a state). ``now`` is the moment ages and the 30-day timeline are measured from.
    """
    now = utc(now)
    status = _dict(status)
    instances = [_dict(i) for i in _list(status.get("instances"))]
    problems = _list(status.get("problems"))
    state, sentence = _overall(instances, len(problems))
    counts = {s: 0 for s in _RPO_STATES}
    for inst in instances:
        counts[_rpo_state(_dict(inst.get("rpo")))] += 1
    failures = sum(len(_list(i.get("openFailures"))) for i in instances)
    tally = ", ".join(f"{counts[s]} {_RPO_STATES[s][0].lower()}" for s in ("breached", "at-risk", "unknown", "ok"))
    generated = status.get("generatedAt") or now.isoformat()

    out = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>apim-dr status: {html.escape(sentence)}</title><style>{_CSS}</style></head><body>",
        "<header><h1>apim-dr status</h1>",
        f'<p class="overall s-{state}" role="status">{html.escape(sentence)}</p>',
        f"<p>{len(instances)} protected instance{'s' if len(instances) != 1 else ''}: {tally} · "
        f"{failures} open failure{'s' if failures != 1 else ''} · "
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''}</p>",
        f"<p class=\"muted\">Generated {_time(generated, now)}. All times UTC.</p></header>",
        "<main>",
    ]
    out.append(f"<section aria-labelledby=\"problems\"><h2 id=\"problems\">Problems ({len(problems)})</h2>")
    if problems:
        items = "".join(f"<li>{_t(p.get('message', p) if isinstance(p, Mapping) else p)}</li>" for p in problems)
        out.append(f'<ul class="problems">{items}</ul>')
    else:
        out.append('<p class="muted">No settings or discovery problems.</p>')
    out.append("</section>")
    out.append(f"<section aria-labelledby=\"instances\"><h2 id=\"instances\">Instances ({len(instances)})</h2>")
    if not instances:
        out.append("<p>No protected instances: list them in APIM_DR_INSTANCES, or tag them for discovery "
                   "(APIM_DR_DISCOVERY_SUBSCRIPTIONS, APIM_DR_DISCOVERY_TAG).</p>")
    else:
        out.append(f'<p class="muted">Backups, last {TIMELINE_DAYS} days: one mark per UTC day, oldest left: '
                   "✓ a restorable backup, ✗ backups but none restorable, · no backup; the days are named below "
                   "each timeline.</p>")
        out.append('<div class="wrap"><table><thead><tr><th scope="col">Instance</th><th scope="col">RPO</th>'
                   f'<th scope="col">Backups, last {TIMELINE_DAYS} days</th><th scope="col">Standby</th>'
                   '<th scope="col">Last drill</th><th scope="col">Open failures</th></tr></thead><tbody>')
        out.extend(_instance_row(inst, now) for inst in sorted(instances, key=_sort_key))
        out.append("</tbody></table></div>")
    out.append("</section></main>")
    out.append("<footer>apim-dr · the same data as JSON: <code>GET /api/status</code> · "
               "reload the page for fresh data</footer></body></html>")
    return "".join(out)
