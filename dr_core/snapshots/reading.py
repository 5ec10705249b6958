"""What a snapshot reads, in which order: the read tasks and what each answer adds. Pure.

A snapshot starts with one list per top-level kind the instance's tier has, plus the service policy.
Each answer names items, and some items have parts of their own to read: an API its operations,
schemas, tags, diagnostics, policy and revisions; an operation its policy and tags; a product its
APIs, groups, tags and policy; a non-current revision is read like an API. A list with more pages
adds its next page. Tasks are plain data (:meth:`ReadTask.to_json`), so the queue of pending reads
can be saved between invocations and a snapshot resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dr_core.kernel.wire import JsonObject
from dr_core.ports import ConfigPage

from .kinds import KINDS, ItemId, ItemKind, kind_named

__all__ = ["REVISIONS", "ReadTask", "first_reads", "items_and_reads"]

REVISIONS = "api-revisions"  # not an item kind: the list of an API's revisions
_MAX_NAME = 256

# The parts read below each item of a kind: (kind, single item GET?)
_PARTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "apis": (("api-operations", False), ("api-schemas", False), ("api-tags", False), ("api-diagnostics", False),
             ("api-policies", True)),
    "api-operations": (("api-operation-policies", True), ("api-operation-tags", False)),
    "products": (("product-apis", False), ("product-groups", False), ("product-tags", False),
                 ("product-policies", True)),
}


@dataclass(frozen=True)
class ReadTask:
    """One ARM read: a page of ``kind``'s items below ``names``, or (``single``) the one item ``names`` name."""

    kind: str
    names: tuple[str, ...] = ()
    page: str | None = None
    single: bool = False

    def to_json(self) -> list[object]:
        return [self.kind, list(self.names), self.page, self.single]

    @classmethod
    def from_json(cls, raw: object) -> ReadTask:
        """:raises ValueError: for anything but a task this module wrote."""
        if not isinstance(raw, list) or len(raw) != 4:
            raise ValueError("a read task is [kind, names, page, single]")
        kind, names, page, single = raw
        if kind != REVISIONS:
            kind_named(str(kind))  # KeyError for an unknown kind
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError("a read task's names are strings")
        if page is not None and not isinstance(page, str):
            raise ValueError("a read task's page is a string")
        return cls(str(kind), tuple(names), page, bool(single))

    def describe(self) -> str:
        where = "/".join(self.names)
        return f"{self.kind}{' of ' + where if where else ''}{' (next page)' if self.page else ''}"


def first_reads(tier: str | None) -> list[ReadTask]:
    """Every top-level list the tier has, and the service policy."""
    tasks = [ReadTask(kind.key) for kind in KINDS
             if kind.parent is None and not kind.singleton and kind.supported_in(tier)]
    tasks.append(ReadTask("policy", single=True))
    return tasks


def items_and_reads(task: ReadTask, page: ConfigPage, tier: str | None) -> tuple[
        list[tuple[ItemId, JsonObject]], list[ReadTask]]:
    """The items an answer holds, and the reads they add (their parts, the next page)."""
    if task.kind == REVISIONS:
        # A revision that is not the current one is its own API, ``{api};rev={n}``, read like one.
        revisions = [ReadTask("apis", (name,), single=True) for name, body in page.entries
                     if body.get("isCurrent") is not True and _valid(name)]
        return [], revisions + _next(task, page)
    kind = kind_named(task.kind)
    items: list[tuple[ItemId, JsonObject]] = []
    reads: list[ReadTask] = []
    for name, body in page.entries:
        if not _valid(name):
            continue
        # A single item's GET names it whole (an API revision, a policy); a list page adds each item's name.
        names = task.names if task.single else (*task.names, name)
        item_id = kind.item_id(*names)
        items.append((item_id, body))
        reads += _parts_of(kind, item_id.names, tier, from_list=not task.single)
    return items, reads + _next(task, page)


def _parts_of(kind: ItemKind, names: Sequence[str], tier: str | None, *, from_list: bool) -> list[ReadTask]:
    reads = [ReadTask(part, tuple(names), single=single) for part, single in _PARTS.get(kind.key, ())
             if kind_named(part).supported_in(tier)]
    if kind.key == "apis" and from_list:
        reads.append(ReadTask(REVISIONS, tuple(names)))
    return reads


def _next(task: ReadTask, page: ConfigPage) -> list[ReadTask]:
    if task.single or not page.next_page:
        return []
    return [ReadTask(task.kind, task.names, page.next_page)]


def _valid(name: str) -> bool:
    return isinstance(name, str) and 0 < len(name) <= _MAX_NAME and "/" not in name
