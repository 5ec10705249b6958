"""Where the configuration rules read and write entities: the store, or a document being imported.

The rules in ``contracts.py`` (defaults, references, uniqueness, cascades) run against a ``ConfigView``:
``StoreView`` for an ARM request (SQLite, inside the request's transaction) and ``MemoryView`` while a
configuration document is imported (seed, restore, admin change), which is then written in one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .entity import Entity
from .state import Store

# arm: an ARM request. import: a seed or a restore (read-only fields such as createdDate are kept,
# service-specific checks such as Key Vault identities are skipped). admin: an admin change, which
# also drops links to entities it removed (as APIM's deletes cascade).
Mode = Literal["arm", "import", "admin"]


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    resource_id: str  # /subscriptions/.../service/{name}
    tier: str
    identity: dict[str, Any] | None
    now_iso: str  # the emulator clock, ARM's timestamp form


class ConfigView(Protocol):
    def get(self, path: str) -> Entity | None: ...

    def children(self, parent: str, kind: str, *, hidden: bool | None = False) -> list[Entity]: ...

    def by_akey(self, kinds: tuple[str, ...], akey: str) -> list[Entity]: ...

    def of_kinds(self, kinds: tuple[str, ...], *, containing: str | None = None) -> list[Entity]: ...

    def tree(self, path: str) -> list[Entity]: ...

    def with_prefix(self, prefix: str) -> list[Entity]: ...

    def put(self, entity: Entity) -> None: ...

    def delete_tree(self, path: str) -> None: ...

    def next_version(self) -> int: ...


@dataclass
class Ctx:
    """What a rule needs: where to look, which service, which kind of caller."""

    view: ConfigView
    service: ServiceInfo
    mode: Mode = "arm"
    api_version: str = "2024-05-01"


class StoreView:
    """The service's entities in SQLite; writes go straight to the store (the caller holds a transaction)."""

    def __init__(self, store: Store, service: str) -> None:
        self.store = store
        self.service = service

    def get(self, path: str) -> Entity | None:
        return self.store.entity(self.service, path)

    def children(self, parent: str, kind: str, *, hidden: bool | None = False) -> list[Entity]:
        return self.store.entity_children(self.service, parent, kind, hidden=hidden)

    def by_akey(self, kinds: tuple[str, ...], akey: str) -> list[Entity]:
        return self.store.entities_by_akey(self.service, kinds, akey)

    def of_kinds(self, kinds: tuple[str, ...], *, containing: str | None = None) -> list[Entity]:
        return self.store.entities_of_kinds(self.service, kinds, containing=containing)

    def tree(self, path: str) -> list[Entity]:
        return self.store.entity_tree(self.service, path)

    def with_prefix(self, prefix: str) -> list[Entity]:
        return self.store.entities_with_prefix(self.service, prefix)

    def put(self, entity: Entity) -> None:
        self.store.put_entity(self.service, entity)

    def delete_tree(self, path: str) -> None:
        self.store.delete_entity_tree(self.service, path)

    def next_version(self) -> int:
        return self.store.next_version()


class MemoryView:
    """Entities in dictionaries, for building a whole configuration before it is written at once."""

    def __init__(self, next_version: Callable[[], int]) -> None:
        self._next_version = next_version
        self.rows: dict[str, Entity] = {}
        self._children: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._akeys: dict[tuple[str, str], set[str]] = defaultdict(set)

    def get(self, path: str) -> Entity | None:
        return self.rows.get(path)

    def children(self, parent: str, kind: str, *, hidden: bool | None = False) -> list[Entity]:
        found = [self.rows[p] for p in self._children.get((parent, kind), []) if p in self.rows]
        if hidden is not None:
            found = [e for e in found if e.hidden == hidden]
        return sorted(found, key=lambda e: e.seq)

    def by_akey(self, kinds: tuple[str, ...], akey: str) -> list[Entity]:
        paths = {p for kind in kinds for p in self._akeys.get((kind, akey), ())}
        return sorted((self.rows[p] for p in paths if p in self.rows), key=lambda e: e.seq)

    def of_kinds(self, kinds: tuple[str, ...], *, containing: str | None = None) -> list[Entity]:
        import json

        found = [e for e in self.rows.values() if e.kind in kinds]
        if containing is not None:
            needle = containing.lower()
            found = [e for e in found if needle in json.dumps(e.props).lower()]
        return sorted(found, key=lambda e: e.seq)

    def tree(self, path: str) -> list[Entity]:
        prefix = path + "/"
        return sorted((e for p, e in self.rows.items() if p == path or p.startswith(prefix)), key=lambda e: e.seq)

    def with_prefix(self, prefix: str) -> list[Entity]:
        return sorted((e for p, e in self.rows.items() if p.startswith(prefix)), key=lambda e: e.seq)

    def put(self, entity: Entity) -> None:
        old = self.rows.get(entity.path)
        if old is None:
            self._children[(entity.parent, entity.kind)].append(entity.path)
        elif old.akey is not None:
            self._akeys[(old.kind, old.akey)].discard(old.path)
        if entity.akey is not None:
            self._akeys[(entity.kind, entity.akey)].add(entity.path)
        self.rows[entity.path] = entity

    def delete_tree(self, path: str) -> None:
        for entity in self.tree(path):
            del self.rows[entity.path]
            self._children[(entity.parent, entity.kind)].remove(entity.path)
            if entity.akey is not None:
                self._akeys[(entity.kind, entity.akey)].discard(entity.path)

    def next_version(self) -> int:
        return self._next_version()

    def entities(self) -> list[Entity]:
        return sorted(self.rows.values(), key=lambda e: e.seq)
