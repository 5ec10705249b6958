"""A snapshot restore as a plan: which items to create, update and delete, in which order, and what blocks it.

Pure: it takes the snapshot, what the target holds now (read through the same reader, with each
item's ETag), the target's tier and the operator's selection, and returns a :class:`RestorePlan`.
The executor then applies the steps one by one with ``If-Match`` (see ``dr_core.snapshots``'s
restore use case); ``--dry-run`` prints this plan and stops.

Rules, and why:

- **Scope.** A whole restore makes the target equal to the snapshot: every item the snapshot
  holds is created or updated, every item the target holds beyond it is deleted (but never a
  system item, such as APIM's built-in groups). A restore of chosen items (``--item apis/echo-api``)
  covers each item with everything below it (its operations, policies, schemas, tags,
  diagnostics) and the links other items hold to it (the products that publish the API), and
  nothing else: an item below a chosen one that the snapshot does not hold is deleted; the rest of
  the instance is left alone.
- **Dependencies.** What a chosen item refers to (its version set, a logger, the named values and
  backends its policies name, the tags and groups of its links) must exist in the target. If the
  target lacks one, the plan creates it from the snapshot and says which item needed it; if the
  target has it, it is left as it is (a one-API restore must not roll back a named value that
  other APIs use).
- **Order.** Creates and updates in :data:`~dr_core.snapshots.kinds.KINDS` order (what others
  refer to first, policies last), then deletes in the reverse order (a policy that stops naming a
  named value is updated before that named value is deleted).
- **What blocks.** A secret named value whose value the snapshot could not hold, and which the
  target lacks; an item kind the target's tier does not have; a chosen item the snapshot does not
  hold. Each is a :class:`PlanProblem` naming the item and what to do; a plan with problems is not
  applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .document import JsonValue, SnapshotDocument, SnapshotItem
from .kinds import ItemId, kind_named, parse_item_id

__all__ = [
    "LiveItem",
    "PlanProblem",
    "PlanStep",
    "RestorePlan",
    "StepAction",
    "plan_restore",
    "references_of",
]

# A named value is referenced by its display name in double braces, anywhere a string may hold one
# (policies, backend credentials, logger credentials): api-management-howto-properties.md.
_NAMED_VALUE_REF = re.compile(r"\{\{([^{}]{1,256})\}\}")
_BACKEND_REF = re.compile(r"""backend-id\s*=\s*["']([^"']{1,256})["']""")
_FRAGMENT_REF = re.compile(r"""<include-fragment\s+fragment-id\s*=\s*["']([^"']{1,256})["']""")
_SERVICE_RELATIVE = re.compile(r"^/(apiVersionSets|loggers|backends|certificates|schemas)/([^/]{1,256})$",
                               re.IGNORECASE)
_RELATIVE_KIND = {"apiversionsets": "api-version-sets", "loggers": "loggers", "backends": "backends",
                  "certificates": "certificates", "schemas": "schemas"}


class StepAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class LiveItem:
    """An item as the target holds it now, with the ETag a write must match."""

    item: SnapshotItem
    etag: str | None = None


@dataclass(frozen=True)
class PlanStep:
    action: StepAction
    item_id: ItemId
    reason: str
    properties: dict[str, JsonValue] = field(default_factory=dict)  # what to PUT (create, update)
    etag: str | None = None  # the target's ETag when planned (update, delete)

    def to_json(self) -> dict[str, JsonValue]:
        return {"action": self.action.value, "item": str(self.item_id), "kind": self.item_id.kind.key,
                "reason": self.reason, "etag": self.etag, "properties": dict(self.properties)}

    @classmethod
    def from_json(cls, raw: Mapping[str, JsonValue]) -> PlanStep:
        properties = raw.get("properties") or {}
        etag = raw.get("etag")
        if not isinstance(properties, dict) or not isinstance(raw.get("reason"), str):
            raise ValueError("a plan step needs 'reason' and object 'properties'")
        return cls(StepAction(str(raw.get("action"))), parse_item_id(raw.get("item")), str(raw["reason"]),
                   properties, etag if isinstance(etag, str) else None)


@dataclass(frozen=True)
class PlanProblem:
    """Why the plan can't be applied as it is, for one item, and what to do."""

    item: str
    check: str
    message: str
    remediation: str

    def to_json(self) -> dict[str, JsonValue]:
        return {"item": self.item, "check": self.check, "message": self.message, "remediation": self.remediation}


@dataclass(frozen=True)
class RestorePlan:
    steps: tuple[PlanStep, ...]
    problems: tuple[PlanProblem, ...]
    unchanged: int
    kept: tuple[str, ...] = ()  # in scope, left alone on purpose (secret named values present in the target)
    key_vault_secrets: tuple[str, ...] = ()  # secret identifiers the target's identity must read

    @property
    def blocked(self) -> bool:
        return bool(self.problems)

    def counts(self) -> dict[str, int]:
        out = {action.value: 0 for action in StepAction}
        for step in self.steps:
            out[step.action.value] += 1
        return out

    def to_json(self) -> dict[str, JsonValue]:
        return {"counts": dict(self.counts()), "unchanged": self.unchanged, "kept": list(self.kept),
                "keyVaultSecrets": list(self.key_vault_secrets),
                "problems": [p.to_json() for p in self.problems], "steps": [s.to_json() for s in self.steps]}


def plan_restore(snapshot: SnapshotDocument, target: Mapping[str, LiveItem], *, target_tier: str | None,
                 selection: Sequence[ItemId] | None = None) -> RestorePlan:
    """The steps that make the target hold the snapshot's items (all of them, or ``selection``).

    ``target`` is keyed by lower-cased item ID (:meth:`SnapshotDocument.by_id`).
    """
    wanted = snapshot.by_id()
    problems: list[PlanProblem] = []
    scope = _scope(wanted, target, selection, problems)
    needed_by = _dependencies(wanted, scope, target, whole=selection is None)
    creates_updates: list[PlanStep] = []
    deletes: list[PlanStep] = []
    unchanged = 0
    kept: list[str] = []
    for key in sorted(scope | set(needed_by), key=lambda k: (wanted.get(k) or target[k].item).item_id.sort_key()):
        want, live = wanted.get(key), target.get(key)
        if want is None:
            assert live is not None
            deletes.append(PlanStep(StepAction.DELETE, live.item.item_id, "not in the snapshot", etag=live.etag))
            continue
        outcome = _step_for(want, live, target_tier=target_tier, in_scope=key in scope, needed_by=needed_by.get(key))
        if isinstance(outcome, PlanStep):
            creates_updates.append(outcome)
        elif isinstance(outcome, PlanProblem):
            problems.append(outcome)
        elif outcome == "kept":
            kept.append(str(want.item_id))
        else:
            unchanged += 1
    deletes.reverse()
    secrets = sorted({ref for step in creates_updates for ref in _key_vault_refs(step.properties)})
    return RestorePlan(tuple(creates_updates + deletes), tuple(problems), unchanged, tuple(kept), tuple(secrets))


def _scope(wanted: Mapping[str, SnapshotItem], target: Mapping[str, LiveItem], selection: Sequence[ItemId] | None,
           problems: list[PlanProblem]) -> set[str]:
    """The items the restore makes equal to the snapshot (lower-cased IDs); a chosen item it lacks is a problem."""
    if selection is None:
        return set(wanted) | {key for key, live in target.items() if not _is_system(live.item)}
    scope: set[str] = set()
    for chosen in selection:
        if str(chosen).lower() not in wanted:
            problems.append(PlanProblem(str(chosen), "item-in-snapshot",
                                        f"the snapshot holds no {chosen.kind.label} {str(chosen)!r}",
                                        "List the snapshot's items with `apim-dr snapshots show <id>` "
                                        "and choose one it holds."))
            continue
        scope |= _covered_by(chosen, wanted.values())
        scope |= _covered_by(chosen, (live.item for live in target.values()))
    return scope


def _step_for(want: SnapshotItem, live: LiveItem | None, *, target_tier: str | None, in_scope: bool,
              needed_by: str | None) -> PlanStep | PlanProblem | str:
    """What to do with one item the snapshot holds: a step, a problem, "kept" or "unchanged"."""
    if not want.item_id.kind.supported_in(target_tier):
        return PlanProblem(str(want.item_id), "tier-supports-item",
                           f"the target's tier {target_tier} has no {want.item_id.kind.label}s",
                           "Restore into an instance of a tier that has them, or leave this item out.")
    if _is_uncaptured_secret(want):
        if live is not None:
            return "kept"
        return PlanProblem(str(want.item_id), "secret-values-present",
                           f"named value {want.item_id.name!r} is a secret whose value a snapshot never holds, "
                           "and the target does not have it",
                           f"Create named value {want.item_id.name!r} in the target by hand (or as a Key Vault "
                           "reference), then run the restore again.")
    if live is None:
        reason = f"needed by {needed_by}" if needed_by is not None and not in_scope else "not in the target"
        return PlanStep(StepAction.CREATE, want.item_id, reason, want.properties)
    if in_scope and not _same(want, live.item):
        return PlanStep(StepAction.UPDATE, want.item_id, "differs from the snapshot", want.properties, etag=live.etag)
    return "unchanged"


def references_of(item: SnapshotItem, named_values_by_display: Mapping[str, str]) -> set[str]:
    """Lower-cased item IDs this item refers to (must exist before it), from its ID and its properties."""
    refs: set[str] = set()
    link = _link_target(item.item_id)
    if link is not None:
        refs.add(link)
    for text in _strings(item.properties):
        refs |= _text_refs(text, named_values_by_display)
    if item.item_id.kind.key == "api-operations":
        for schema in _values_of_key(item.properties, "schemaId"):
            refs.add(f"apis/{item.item_id.names[0]}/schemas/{schema}")
    return {ref.lower() for ref in refs} - {str(item.item_id).lower()}


def _text_refs(text: str, named_values_by_display: Mapping[str, str]) -> set[str]:
    """Items a string names: ``{{named value}}``, ``backend-id``, ``fragment-id``, a service-relative ID."""
    refs = {named_values_by_display[d.strip().lower()] for d in _NAMED_VALUE_REF.findall(text)
            if d.strip().lower() in named_values_by_display}
    refs |= {f"backends/{backend}" for backend in _BACKEND_REF.findall(text)}
    refs |= {f"policy-fragments/{fragment}" for fragment in _FRAGMENT_REF.findall(text)}
    match = _SERVICE_RELATIVE.match(text)
    if match:
        refs.add(f"{_RELATIVE_KIND[match.group(1).lower()]}/{match.group(2)}")
    return refs


def _covered_by(chosen: ItemId, items: Iterable[SnapshotItem]) -> set[str]:
    """The chosen item, what is below it, and the links that point at it from elsewhere."""
    out: set[str] = set()
    chosen_key = str(chosen).lower()
    for item in items:
        item_id = item.item_id
        if item_id.is_within(chosen) or (item_id.kind.link and _link_target(item_id) == chosen_key):
            out.add(str(item_id).lower())
    return out


def _link_target(item_id: ItemId) -> str | None:
    kind = item_id.kind.key
    if kind == "product-apis":
        return f"apis/{item_id.names[1]}".lower()
    if kind == "product-groups":
        return f"groups/{item_id.names[1]}".lower()
    if kind in ("api-tags", "product-tags"):
        return f"tags/{item_id.names[1]}".lower()
    if kind == "api-operation-tags":
        return f"tags/{item_id.names[2]}".lower()
    return None


def _dependencies(wanted: Mapping[str, SnapshotItem], scope: set[str], target: Mapping[str, LiveItem], *,
                  whole: bool) -> dict[str, str]:
    """Items outside the scope that an in-scope item refers to and the target lacks -> the first item needing it."""
    if whole:
        return {}
    by_display = _named_values_by_display(wanted.values())
    needed: dict[str, str] = {}
    queue = [key for key in sorted(scope) if key in wanted]
    while queue:
        key = queue.pop(0)
        for ref in sorted(references_of(wanted[key], by_display)):
            if ref in scope or ref in needed or ref in target or ref not in wanted:
                continue
            needed[ref] = str(wanted[key].item_id)
            queue.append(ref)
    return needed


def _named_values_by_display(items: Iterable[SnapshotItem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if item.item_id.kind is kind_named("named-values"):
            display = item.properties.get("displayName")
            name = display if isinstance(display, str) and display else item.item_id.name
            out[name.lower()] = str(item.item_id).lower()
    return out


def _is_system(item: SnapshotItem) -> bool:
    """APIM's built-in groups (administrators, developers, guests: ``builtIn``, type ``system``) can't be deleted."""
    if item.item_id.kind is not kind_named("groups"):
        return False
    return item.properties.get("builtIn") is True or item.properties.get("type") == "system"


def _is_uncaptured_secret(item: SnapshotItem) -> bool:
    properties = item.properties
    return (item.item_id.kind is kind_named("named-values") and properties.get("secret") is True
            and properties.get("value") is None and not properties.get("keyVault"))


def _same(want: SnapshotItem, live: SnapshotItem) -> bool:
    return dict(want.properties) == dict(live.properties)


def _key_vault_refs(properties: dict[str, JsonValue]) -> list[str]:
    key_vault = properties.get("keyVault")
    if isinstance(key_vault, dict):
        secret = key_vault.get("secretIdentifier")
        if isinstance(secret, str) and secret:
            return [secret]
    return []


def _strings(value: JsonValue) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for child in value.values():
            yield from _strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child)


def _values_of_key(value: JsonValue, key: str) -> Iterable[str]:
    if isinstance(value, Mapping):
        for k, child in value.items():
            if k == key and isinstance(child, str):
                yield child
            else:
                yield from _values_of_key(child, key)
    elif isinstance(value, list):
        for child in value:
            yield from _values_of_key(child, key)

