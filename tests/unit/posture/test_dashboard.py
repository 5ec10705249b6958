"""The status page renderer: what a person reads, hostile and odd input, empty states, the page's policy."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from dr_core.kernel.clock import iso
from dr_core.posture.dashboard import (
    CONTENT_SECURITY_POLICY,
    TIMELINE_DAYS,
    _duration,
    _hours,
    page_headers,
    render_dashboard,
)
from tests.unit.fakes import rid

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HOSTILE = "<script>document.title='pwned'</script>\"' onmouseover=\"alert(1)\" <img src=x onerror=alert(2)>"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "main", "section",
                "ul", "li", "bdi", "small", "time", "span", "code", "div", "table", "thead", "tbody", "tr", "th",
                "td", "ol", "br", "footer", "b"}
BLOCKS = {"p", "li", "div", "td", "th", "tr", "br", "h1", "h2", "section", "header", "footer", "ul", "ol", "table",
          "main"}
ALLOWED_ATTRIBUTES = {"lang", "charset", "name", "content", "class", "role", "title", "datetime", "scope",
                      "aria-hidden", "aria-labelledby", "id"}


def backup(days_ago: float, *, restorable: bool = True, because: str | None = None) -> dict[str, Any]:
    created = NOW.replace(hour=2) - timedelta(days=days_ago)
    return {"blobName": f"apim-prod/{created:%Y/%m/%d}/x.apimbackup", "createdAt": iso(created), "sku": "Standard",
            "sizeBytes": 1024, "restorable": restorable, "notRestorableBecause": because}


def instance(name: str = "apim-prod", **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "instance": rid(name), "serviceName": name, "alias": None,
        "rpo": {"targetHours": 26, "state": "ok", "since": iso(NOW - timedelta(days=3)),
                "newestRestorable": {"blobName": "b", "createdAt": iso(NOW - timedelta(hours=7)), "ageHours": 7.0}},
        "standby": None, "lastDrill": None, "openFailures": [], "backups": [backup(d) for d in range(30)],
    }
    value.update(overrides)
    return value


def status(*instances: dict[str, Any], problems: list[Any] | None = None) -> dict[str, Any]:
    return {"generatedAt": iso(NOW), "instances": list(instances), "problems": problems or []}


def failure(**overrides: Any) -> dict[str, Any]:
    value = {"jobId": "backup-20261130T020000Z-apim-prod-1234abcd", "kind": "backup", "state": "Failed",
             "errorCode": "ManagedIdentityNotFound", "message": "The service has no managed identity.",
             "remediation": "Turn on the system-assigned identity.", "at": iso(NOW - timedelta(hours=7))}
    value.update(overrides)
    return value


class Page(HTMLParser):
    """The rendered page as a person (and a browser) reads it: tags, attributes, visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self._skip = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "title"):
            self._skip += 1
        if tag in BLOCKS:
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if tag in BLOCKS:
            self.chunks.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.chunks))

    def with_class(self, cls: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.tags if cls in (attrs.get("class") or "").split()]


def render(*instances: dict[str, Any], problems: list[Any] | None = None) -> str:
    return render_dashboard(status(*instances, problems=problems), now=NOW)


# -- what a person reads ----------------------------------------------------------------------------------
def test_a_healthy_instance_reads_ok_with_its_numbers() -> None:
    drill = {"jobId": "restore-x", "state": "passed", "rtoSeconds": 2712, "rpoHoursAtDrill": 3.5,
             "finishedAt": iso(NOW - timedelta(days=2)), "target": rid("apim-drill")}
    standby = {"instance": rid("apim-dr"), "sync": True, "lagHours": 7.2, "state": "Succeeded", "error": None,
               "lastSucceeded": {"backup": "b", "backupCreatedAt": iso(NOW - timedelta(hours=7)),
                                 "finishedAt": iso(NOW - timedelta(hours=6))}}
    page = Page(render(instance(alias="prod", standby=standby, lastDrill=drill)))
    text = page.text
    for expected in ("✓ All 1 instances within their RPO target", "prod", "apim-prod", "✓ OK",
                     "newest restorable backup 7 h old, target 26 h", "30 of 30 days with a restorable backup",
                     "apim-dr", "✓ lag 7.2 h", "✓ passed", "RTO 45 min 12 s", "RPO at drill 3.5 h",
                     "into apim-drill", "0 open failures", "No settings or discovery problems."):
        assert expected in text, expected


@pytest.mark.parametrize(("rpo_state", "overall"), [
    ("breached", "✗ Breached: 1 of 2 instances past their RPO target"),
    ("at-risk", "! At risk: 1 of 2 instances close to their RPO target"),
    ("unknown", "! Needs attention"),
    ("ok", "✓ All 2 instances within their RPO target"),
    ("sideways", "! Needs attention"),  # a state the page does not know counts as unknown
])
def test_the_overall_state_is_the_worst_instance(rpo_state: str, overall: str) -> None:
    worst = instance("apim-b", rpo={"targetHours": 26, "state": rpo_state, "newestRestorable": None})
    page = Page(render(instance("apim-a"), worst))
    assert overall in page.text
    title = re.search(r"<title>(.*?)</title>", render(instance("apim-a"), worst))
    assert title is not None and overall in title.group(1)


@pytest.mark.parametrize("attention", [
    {"openFailures": [failure()]},
    {"standby": {"instance": rid("apim-dr"), "sync": True, "lagHours": 1, "state": "Failed", "error": None}},
    {"standby": {"instance": rid("apim-dr"), "sync": True, "lagHours": 1, "state": "Succeeded",
                 "error": {"code": "X", "message": "m", "remediation": "r"}}},
    {"lastDrill": {"state": "failed"}},
])
def test_failures_beside_an_ok_rpo_make_the_page_need_attention(attention: dict[str, Any]) -> None:
    assert "! Needs attention" in Page(render(instance(**attention))).text


def test_a_problem_alone_makes_the_page_need_attention() -> None:
    page = Page(render(instance(), problems=["APIM_DR_INSTANCES[1]: not an APIM resource ID"]))
    assert "! Needs attention" in page.text and "APIM_DR_INSTANCES[1]: not an APIM resource ID" in page.text
    assert "Problems (1)" in page.text


def test_instances_are_listed_most_urgent_first() -> None:
    def named(name: str, state: str, **more: Any) -> dict[str, Any]:
        return instance(name, rpo={"targetHours": 26, "state": state, "newestRestorable": None}, **more)

    html = render(named("apim-ok", "ok"), named("apim-b-unknown", "unknown"), named("apim-risk", "at-risk"),
                  named("apim-breached", "breached"), named("apim-a-unknown", "unknown"),
                  named("apim-failing", "ok", openFailures=[failure()]))
    rows = re.findall(r'<tr class="s-[a-z-]+"><th scope="row" title="[^"]*"><bdi>([^<]+)</bdi>', html)
    assert rows == ["apim-breached", "apim-risk", "apim-a-unknown", "apim-b-unknown", "apim-failing", "apim-ok"]


def test_an_open_failure_shows_its_error_and_what_to_do() -> None:
    text = Page(render(instance(openFailures=[failure()]))).text
    for expected in ("✗ backup Failed", "ManagedIdentityNotFound", "The service has no managed identity.",
                     "What to do: Turn on the system-assigned identity.",
                     "job backup-20261130T020000Z-apim-prod-1234abcd", "2026-11-30 02:00 UTC (7 h ago)"):
        assert expected in text, expected


def test_many_failures_are_cut_with_a_count() -> None:
    text = Page(render(instance(openFailures=[failure(jobId=f"job-{i}") for i in range(8)]))).text
    assert "job job-4" in text and "job job-5" not in text and "and 3 more" in text


def test_a_failure_without_remediation_still_says_where_to_look() -> None:
    assert "What to do: see the job" in Page(render(instance(openFailures=[failure(remediation=None)]))).text


@pytest.mark.parametrize(("standby", "expected", "cls"), [
    (None, "no standby", None),
    ({"instance": rid("apim-dr"), "sync": False}, "sync off", None),
    ({"instance": rid("apim-dr"), "sync": True, "lagHours": None, "lastSucceeded": None}, "! never synced", "warn"),
    ({"instance": rid("apim-dr"), "sync": True, "lagHours": 30.0}, "! lag 30 h", "warn"),
    ({"instance": rid("apim-dr"), "sync": True, "lagHours": 0.25}, "✓ lag 15 min", "good"),
    ({"instance": rid("apim-dr"), "sync": True, "lagHours": 100}, "! lag 4.2 days", "warn"),
    ({"instance": rid("apim-dr"), "sync": True, "lagHours": 2, "state": "Failed",
      "error": {"code": "PreflightFailed", "message": "tier differs", "remediation": "Use a Premium standby."}},
     "✗ sync failed PreflightFailed tier differs What to do: Use a Premium standby.", "fail"),
])
def test_standby_states(standby: dict[str, Any] | None, expected: str, cls: str | None) -> None:
    page = Page(render(instance(standby=standby)))
    assert expected in page.text
    if cls:
        assert page.with_class(cls)


@pytest.mark.parametrize(("drill", "expected"), [
    (None, "no drill yet"),
    ({"state": "passed", "rtoSeconds": 59, "rpoHoursAtDrill": 0.5}, "✓ passed RTO 59 s · RPO at drill 30 min"),
    ({"state": "failed", "rtoSeconds": None, "rpoHoursAtDrill": None}, "✗ failed RTO – · RPO at drill –"),
    ({"state": "running", "rtoSeconds": None}, "… running"),
    ({"state": None}, "… unknown"),
    ({"state": "failed", "error": {"code": "VerificationFailed", "message": "api 'orders' missing",
                                   "remediation": "Check the backup."}},
     "✗ drill failed VerificationFailed api 'orders' missing What to do: Check the backup."),
    ({"state": "passed", "rtoSeconds": 7300, "finishedAt": iso(NOW - timedelta(days=1)), "target": rid("apim-drill")},
     "RTO 2 h 01 min"),
])
def test_drill_states(drill: dict[str, Any] | None, expected: str) -> None:
    assert expected in Page(render(instance(lastDrill=drill))).text


@pytest.mark.parametrize(("rpo", "expected"), [
    ({"targetHours": 26, "state": "breached", "since": iso(NOW - timedelta(days=2)),
      "newestRestorable": {"createdAt": iso(NOW - timedelta(days=3)), "ageHours": 72}},
     "✗ Breached newest restorable backup 3.0 days old, target 26 h"),
    ({"targetHours": 26, "state": "breached", "since": iso(NOW - timedelta(days=2)),
      "newestRestorable": {"createdAt": iso(NOW - timedelta(days=3)), "ageHours": 72}}, "breached since 2026-11-28"),
    ({"targetHours": 12, "state": "unknown", "newestRestorable": None}, "? Unknown no restorable backup, target 12 h"),
    ({"state": "ok", "newestRestorable": {"createdAt": iso(NOW - timedelta(hours=2))}},
     "newest restorable backup 2 h old, no target"),  # age computed from createdAt when absent
    ({}, "? Unknown no restorable backup, no target"),
    ({"targetHours": 48, "state": "ok", "newestRestorable": None}, "no restorable backup, target 48 h"),
    ({"targetHours": 0.5, "state": "ok", "newestRestorable": None}, "no restorable backup, target 30 min"),
    ({"state": "<b>weird</b>"}, "? Unknown (<b>weird</b>)"),
])
def test_rpo_cell(rpo: dict[str, Any], expected: str) -> None:
    assert expected in Page(render(instance(rpo=rpo))).text


# -- the 30-day timeline --------------------------------------------------------------------------------
def test_the_timeline_has_one_mark_per_day_oldest_first_and_says_it_in_words() -> None:
    backups = [backup(0), backup(-0.1), backup(3, restorable=False, because="expired on <then>"),
               backup(4, restorable=False), backup(4), backup(29), backup(30), backup(45), backup(-2)]
    html = render(instance(backups=backups))
    page = Page(html)
    marks = [attrs for tag, attrs in page.tags if tag == "li" and attrs.get("class") in ("r", "n", "x")]
    assert len(marks) == TIMELINE_DAYS
    classes = "".join(str(m["class"]) for m in marks)
    # day 29 ago (oldest, first) .. today (last); day 4 has a restorable one, day 3 only a non-restorable one;
    # backup(-2) is in the future and backup(30) before the window.
    assert classes == "r" + "x" * 24 + "rnxxr"
    glyphs = re.findall(r'<li class="[rnx]">(.)</li>', html)
    assert "".join(glyphs) == "✓" + "·" * 24 + "✓✗··✓"  # not color alone
    # The picture is hidden from screen readers; the words say the same (a backup from the future, too).
    assert next(attrs for tag, attrs in page.tags if tag == "ol")["aria-hidden"] == "true"
    assert "3 of 30 days with a restorable backup; newest 2026-12-02 02:00 UTC (in 41 h)" in page.text
    assert "no backup: Nov 2 – Nov 25, Nov 28 – Nov 29" in page.text
    assert "backups, none restorable: Nov 27 (expired on <then>)" in page.text


@pytest.mark.parametrize(("ages", "words"), [
    ([1, 3, 5, 7], "backups, none restorable: Nov 23; Nov 25; Nov 27; and 1 more days"),
    ([2], "backups, none restorable: Nov 28 "),
])
def test_days_without_a_restorable_backup_are_named(ages: list[int], words: str) -> None:
    backups = [backup(0)] + [backup(a, restorable=False) for a in ages]
    assert words in Page(render(instance(backups=backups))).text + " "


@pytest.mark.parametrize("backups", [[], [backup(45)], None, "not a list", [{"createdAt": "yesterday"}, 5]])
def test_no_backups_in_the_window_is_said_in_words(backups: Any) -> None:
    page = Page(render(instance(backups=backups, rpo={"targetHours": 26, "state": "unknown",
                                                      "newestRestorable": None})))
    assert "No backups in the last 30 days" in page.text
    assert len(page.with_class("x")) == TIMELINE_DAYS


def test_a_backup_before_the_window_is_named() -> None:
    text = Page(render(instance(backups=[backup(45)]))).text
    assert "No backups in the last 30 days (newest 2026-10-16 02:00 UTC (45.3 days ago))." in text


# -- empty and odd documents ----------------------------------------------------------------------------
@pytest.mark.parametrize("document", [
    {}, {"instances": []}, {"instances": None, "problems": None}, {"instances": "x", "problems": "y"},
    {"generatedAt": "not a time", "instances": []},
])
def test_no_instances(document: dict[str, Any]) -> None:
    text = Page(render_dashboard(document, now=NOW)).text
    assert "No protected instances" in text and "Instances (0)" in text


@pytest.mark.parametrize("odd", [
    {"rpo": None, "standby": "x", "lastDrill": 5, "openFailures": {"a": 1}, "backups": {"b": 2}},
    {"rpo": {"targetHours": "26", "state": 3, "since": 7, "newestRestorable": "x"}},
    {"rpo": {"targetHours": float("nan"), "newestRestorable": {"ageHours": float("inf"), "createdAt": 5}}},
    {"rpo": {"targetHours": True, "newestRestorable": {"ageHours": -3}}},
    {"standby": {"instance": None, "sync": "yes", "lagHours": "7"}},
    {"standby": {"instance": 5, "sync": True, "lagHours": -2, "lastSucceeded": "x", "error": "boom"}},
    {"lastDrill": {"state": ["passed"], "rtoSeconds": "fast", "rpoHoursAtDrill": {}, "finishedAt": [], "target": 1}},
    {"openFailures": [None, 5, "x", {"kind": 7, "state": None, "at": "soon", "message": {"nested": True}}]},
    {"alias": 5, "serviceName": None, "instance": None},
    {"backups": [{"createdAt": iso(NOW), "restorable": "yes"}, {"createdAt": None}, []]},
])
def test_fields_of_the_wrong_type_render_instead_of_failing(odd: dict[str, Any]) -> None:
    html = render(instance(**odd))
    page = Page(html)
    assert "Instances (1)" in page.text
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS


def test_an_instance_that_is_not_an_object_is_shown_as_unknown() -> None:
    text = Page(render_dashboard({"instances": ["apim-x", 5]}, now=NOW)).text
    assert "Instances (2)" in text and "? Unknown" in text


# -- hostile and large text -----------------------------------------------------------------------------
def hostile_instance() -> dict[str, Any]:
    return instance(
        alias=HOSTILE, serviceName=HOSTILE, instance=HOSTILE,
        rpo={"targetHours": 26, "state": HOSTILE, "since": HOSTILE, "newestRestorable": {"createdAt": HOSTILE}},
        standby={"instance": "/x/" + HOSTILE, "sync": True, "lagHours": 1, "state": HOSTILE,
                 "error": {"code": HOSTILE, "message": HOSTILE, "remediation": HOSTILE}},
        lastDrill={"state": HOSTILE, "target": "/x/" + HOSTILE, "finishedAt": HOSTILE,
                   "error": {"code": HOSTILE, "message": HOSTILE, "remediation": HOSTILE}},
        openFailures=[failure(jobId=HOSTILE, kind=HOSTILE, state=HOSTILE, errorCode=HOSTILE, message=HOSTILE,
                              remediation=HOSTILE, at=HOSTILE)],
        backups=[backup(1, restorable=False, because=HOSTILE)],
    )


def test_hostile_text_in_every_field_is_shown_as_text_never_as_markup() -> None:
    html = render(hostile_instance(), problems=[HOSTILE, {"message": HOSTILE}])
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS, "a value became an element"
    assert {name for _, attrs in page.tags for name in attrs} <= ALLOWED_ATTRIBUTES, "a value became an attribute"
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert page.text.count("<script>document.title='pwned'</script>") >= 10  # shown, as text, everywhere
    titles = [str(attrs.get("title")) for _, attrs in page.tags if attrs.get("title")]
    assert any(HOSTILE in t for t in titles)  # attribute values carry it whole, quotes included
    assert re.search(r"<title>apim-dr status: [^<]*</title>", html)


@pytest.mark.parametrize("text", [
    "x" * 100_000,
    "é" * 5000 + "\u202egnp.exe",
    "\ud800 lone surrogate \udfff",
    "nul\x00 bell\x07 del\x7f c1\x85",
    "日本語のメッセージ ✓ café \U0001f525",
    "line\nbreak\ttab",
])
def test_long_unicode_and_control_text(text: str) -> None:
    html = render(instance(alias=text[:63], openFailures=[failure(message=text, remediation=text)]),
                  problems=[text])
    html.encode("utf-8")  # every character is encodable (lone surrogates replaced)
    assert len(html) < 60_000
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff]", html)
    page = Page(html)
    if len(text) > 1000:
        assert "…" in page.text  # cut, and visibly so
    if "日本語" in text:
        assert "日本語のメッセージ ✓ café \U0001f525" in page.text


def test_bidi_overrides_cannot_disguise_a_name() -> None:
    assert "premium \ufffdgnp.exe" in Page(render(instance(alias="premium \u202egnp.exe"))).text


# -- the page's own policy ------------------------------------------------------------------------------
def test_the_page_fetches_nothing_and_its_style_matches_the_policy_hash() -> None:
    html = render(hostile_instance(), instance("apim-b"))
    page = Page(html)
    assert not [attrs for _, attrs in page.tags if {"src", "href", "style", "action", "srcset"} & set(attrs)]
    assert not re.search(r"url\(|@import|https?://", html.split("</style>")[0])
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    for directive in ("default-src 'none'", "script-src 'none'", "base-uri 'none'", "form-action 'none'",
                      "frame-ancestors 'none'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_page_headers() -> None:
    assert page_headers() == {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    }


def test_rendering_is_pure() -> None:
    document = status(hostile_instance(), instance("apim-b", openFailures=[failure()]))
    before = copy.deepcopy(document)
    assert render_dashboard(document, now=NOW) == render_dashboard(document, now=NOW)
    assert document == before
    later = render_dashboard(document, now=NOW + timedelta(days=1))
    assert later != render_dashboard(document, now=NOW)  # ages and the window follow `now`


def test_a_naive_now_is_taken_as_utc() -> None:
    assert render_dashboard(status(instance()), now=NOW.replace(tzinfo=None)) == render(instance())


@pytest.mark.parametrize(("hours", "text"), [
    (0, "0 min"), (0.5, "30 min"), (-1, "0 min"), (1, "1 h"), (7.25, "7.2 h"), (26, "26 h"), (47.9, "47.9 h"),
    (48, "2.0 days"), (100, "4.2 days"),
])
def test_hours(hours: float, text: str) -> None:
    assert _hours(hours) == text.replace(" ", "\u00a0")  # number and unit never wrap apart


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (-5, "0 s"), (59.4, "59 s"), (60, "1 min 00 s"), (2712, "45 min 12 s"), (3600, "1 h 00 min"),
    (7300, "2 h 01 min"),
])
def test_duration(seconds: float, text: str) -> None:
    assert _duration(seconds).replace("\u00a0", " ") == text
