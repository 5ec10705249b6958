"""What changed between two configurations: items added, removed and changed, field by field.

Used by ``apim-dr snapshots diff A [B | --live]``, ``GET /api/snapshots/{id}/diff`` and the status
page's drift. Pure: it compares two :class:`~dr_core.snapshots.document.SnapshotDocument` (a live
read is turned into one first, through the same reader and the same secret rules, so a diff can
never show a secret value: none is ever read into a document).

A changed item lists every changed field by its JSON path (``displayName``, ``protocols``,
``authenticationSettings.oAuth2.authorizationServerId``); a policy's XML (``value`` of a policy or
fragment) is shown as a unified diff instead, because a one-character change in a 200-line policy
is unreadable as a before/after pair. Output is bounded (fields per item, diff lines per policy),
and says when it was cut.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .document import JsonValue, SnapshotDocument, SnapshotItem

__all__ = [
    "ChangeKind",
    "FieldChange",
    "ItemChange",
    "SnapshotDiff",
    "diff_documents",
]

MAX_FIELDS_PER_ITEM = 200
MAX_POLICY_DIFF_LINES = 400
# Kinds whose ``value`` is policy XML (api-management-policies: rawxml / xml formats).
_POLICY_KINDS = frozenset({"api-policies", "api-operation-policies", "product-policies", "policy",
                           "policy-fragments"})


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: JsonValue
    after: JsonValue

    def to_json(self) -> dict[str, JsonValue]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ItemChange:
    item_id: str
    kind: str  # the item kind's key (apis, named-values, ...)
    change: ChangeKind
    fields: tuple[FieldChange, ...] = ()
    policy_diff: tuple[str, ...] = ()
    truncated: bool = False

    def to_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"item": self.item_id, "kind": self.kind, "change": self.change.value}
        if self.change is ChangeKind.CHANGED:
            out["fields"] = [f.to_json() for f in self.fields]
            if self.policy_diff:
                out["policyDiff"] = "\n".join(self.policy_diff)
            if self.truncated:
                out["truncated"] = True
        return out


@dataclass(frozen=True)
class SnapshotDiff:
    """``base`` -> ``other``: ``added`` means in ``other`` only."""

    base: str
    other: str
    changes: tuple[ItemChange, ...]
    not_comparable: tuple[str, ...] = ()  # items whose secret value neither side holds

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> dict[str, int]:
        out = {kind.value: 0 for kind in ChangeKind}
        for change in self.changes:
            out[change.change.value] += 1
        return out

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "base": self.base,
            "against": self.other,
            "summary": dict(self.summary()),
            "changes": [c.to_json() for c in self.changes],
            "notComparable": list(self.not_comparable),
        }


def diff_documents(base: SnapshotDocument, other: SnapshotDocument, *, base_label: str,
                   other_label: str) -> SnapshotDiff:
    """Every item added, removed or changed from ``base`` to ``other``, in restore order."""
    before, after = base.by_id(), other.by_id()
    changes: list[ItemChange] = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (before.get(k) or after[k]).item_id.sort_key()):
        old, new = before.get(key), after.get(key)
        if old is None:
            assert new is not None
            changes.append(ItemChange(str(new.item_id), new.item_id.kind.key, ChangeKind.ADDED))
        elif new is None:
            changes.append(ItemChange(str(old.item_id), old.item_id.kind.key, ChangeKind.REMOVED))
        else:
            change = diff_items(old, new)
            if change is not None:
                changes.append(change)
    secrets = sorted({n.item_id for n in base.not_captured} & {n.item_id for n in other.not_captured})
    return SnapshotDiff(base_label, other_label, tuple(changes), tuple(secrets))


def diff_items(old: SnapshotItem, new: SnapshotItem) -> ItemChange | None:
    """The fields that differ between two versions of one item, or None if they are the same."""
    policy = old.item_id.kind.key in _POLICY_KINDS
    fields: list[FieldChange] = []
    _compare(old.properties, new.properties, "", fields, skip_policy_value=policy)
    policy_lines: list[str] = []
    if policy:
        old_xml, new_xml = _policy_text(old.properties), _policy_text(new.properties)
        if old_xml != new_xml:
            policy_lines = list(difflib.unified_diff(old_xml.splitlines(), new_xml.splitlines(),
                                                     fromfile="before", tofile="after", lineterm="", n=2))
            if not policy_lines:  # only line endings or trailing space differ
                policy_lines = ["(whitespace only)"]
    if not fields and not policy_lines:
        return None
    truncated = len(fields) > MAX_FIELDS_PER_ITEM or len(policy_lines) > MAX_POLICY_DIFF_LINES
    return ItemChange(str(new.item_id), new.item_id.kind.key, ChangeKind.CHANGED,
                      tuple(fields[:MAX_FIELDS_PER_ITEM]), tuple(policy_lines[:MAX_POLICY_DIFF_LINES]), truncated)


def _compare(old: JsonValue, new: JsonValue, path: str, out: list[FieldChange], *, skip_policy_value: bool) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys()):
            if skip_policy_value and not path and key == "value":
                continue  # shown as a unified diff
            child = f"{path}.{key}" if path else key
            if key not in old:
                out.append(FieldChange(child, None, new[key]))
            elif key not in new:
                out.append(FieldChange(child, old[key], None))
            else:
                _compare(old[key], new[key], child, out, skip_policy_value=False)
    elif old != new or type(old) is not type(new):
        out.append(FieldChange(path or "(item)", old, new))


def _policy_text(properties: dict[str, JsonValue]) -> str:
    value = properties.get("value")
    if not isinstance(value, str):
        return ""
    return "\n".join(line.rstrip() for line in value.replace("\r\n", "\n").split("\n")).strip()
