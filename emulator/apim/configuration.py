"""Writing configuration entities, and the configuration document (seed, admin view, backup blob).

``put`` and ``delete`` are the write path every caller shares: an ARM request (``children.py``), an
imported document (seed, restore, admin change). API revisions and clones are handled here: a
revision copies its source's children, making one current swaps it with the current one.

The configuration document is nested by parent, each entity an object with its name in ``id`` and its
stored properties beside it (secrets included: it is what a native backup carries)::

    {"policy": {"value": "<policies>...</policies>", "format": "xml"},
     "apis": [{"id": "echo-api", "displayName": "Echo API", "path": "echo", ...,
               "operations": [{"id": "get", "method": "GET", ..., "policy": {...}, "tags": ["t1"]}],
               "policy": {...}, "schemas": [...], "tags": ["t1"], "diagnostics": [...],
               "revisions": [{"id": "echo-api;rev=2", ..., "operations": [...]}]}],
     "products": [{"id": "starter", ..., "apis": ["echo-api"], "groups": ["developers"], "tags": [], "policy": {...}}],
     "apiVersionSets": [...], "namedValues": [...], "backends": [...], "loggers": [...], "diagnostics": [...],
     "policyFragments": [...], "tags": [...], "groups": [...], "certificates": [...], "schemas": [...],
     "subscriptions": [...], "users": [...], "contentTypes": [{"id": ..., "contentItems": [...]}]}

The free-form seed of earlier emulator versions (``apis``, ``products`` with ``apis`` links,
``subscriptions``, ``users``, ``namedValues``) is this format's subset and imports unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from . import tiers
from .contracts import (
    BUILTIN_GROUPS,
    DEFAULT_SERVICE_POLICY,
    PORTAL_DEFAULTS,
    Write,
    behaviour,
    clean_properties,
    link_target,
    path_of,
    rpath_of,
    split_revision,
)
from .entity import Entity
from .errors import ArmError, not_found, validation_error
from .kinds import CHILD_ORDER, IMPORT_ORDER, KINDS, USERS_KEY, Kind
from .views import Ctx, MemoryView

TOP_LEVEL = {KINDS[key].export_key if key in KINDS else key: key for key in IMPORT_ORDER}
LINK_ITEM_KEYS = ("id", "name")


class ConfigurationError(ValueError):
    """A configuration document that cannot be imported; the message names the entry and the rule."""


# -- writes ------------------------------------------------------------------------------------------
def put(
    ctx: Ctx, kind: Kind, parent: Entity | None, name: str, raw: dict[str, Any], *,
    existing: Entity | None, patch: bool = False,
) -> tuple[Entity, bool]:
    """Create or update one entity; returns it and whether it was created."""
    if kind.key == "apis":
        return _put_api(ctx, kind, name, raw, existing=existing, patch=patch)
    rules = behaviour(kind)
    props = clean_properties(kind, raw, mode=ctx.mode, partial=patch)
    if patch and existing is not None:
        props = {**existing.props, **props}
    stored = rules.prepare(Write(ctx, kind, parent, name, props, existing))
    entity = _entity(ctx, kind, parent, existing.name if existing else name, stored, existing=existing)
    _after_check(ctx, kind, entity)
    ctx.view.put(entity)
    return entity, existing is None


def _entity(ctx: Ctx, kind: Kind, parent: Entity | None, name: str, props: dict[str, Any], *,
            existing: Entity | None, path: str | None = None, hidden: bool = False) -> Entity:
    version = ctx.view.next_version()
    entity = Entity(
        path or path_of(parent, kind, name), kind.key, rpath_of(parent, kind, name), name, props,
        etag=version, seq=existing.seq if existing else version, hidden=hidden,
    )
    entity.akey = behaviour(kind).akey(entity)
    return entity


def _after_check(ctx: Ctx, kind: Kind, entity: Entity) -> None:
    check = getattr(behaviour(kind), "after_check", None)
    if check is not None:
        check(ctx, entity)


def resolve_api(ctx: Ctx, name: str) -> tuple[Entity | None, str, bool]:
    """The API entity ``name`` addresses (``x`` or ``x;rev=N``), its storage path, and whether it is current.

    The current revision lives at ``apis/x`` and answers ``x;rev=N`` too; other revisions at
    ``apis/x;rev=N``.
    """
    base, rev = split_revision(name)
    current = ctx.view.get(f"apis/{base.lower()}")
    if rev is None or (current is not None and str(current.props.get("apiRevision")) == rev):
        return current, f"apis/{base.lower()}", True
    path = f"apis/{base.lower()};rev={rev}"
    return ctx.view.get(path), path, False


def _put_api(ctx: Ctx, kind: Kind, name: str, raw: dict[str, Any], *, existing: Entity | None,
             patch: bool) -> tuple[Entity, bool]:
    base, rev = split_revision(name)
    rules = behaviour(kind)
    props = clean_properties(kind, raw, mode=ctx.mode, partial=patch or (existing is None and rev is not None))
    make_current = props.get("isCurrent") is True
    source_ref = props.get("sourceApiId")
    _, path, is_current = resolve_api(ctx, name)
    current = ctx.view.get(f"apis/{base.lower()}")
    source: Entity | None = None
    if existing is None and rev is not None:
        # A new revision of an existing API. Through ARM: a copy of its source (the current revision unless
        # sourceApiId names another). From a configuration document: as the document has it.
        if current is None:
            raise not_found("Api")
        if ctx.mode == "arm":
            source = current
            if source_ref:
                source, _, _ = resolve_api(ctx, _api_name_in(source_ref))
                if source is None or split_revision(source.name)[0].lower() != base.lower():
                    raise not_found("Api")
            props = {**source.props, **props}
        missing = [field for field in kind.required if field not in props]
        if missing:
            raise validation_error(missing[0], f"The {missing[0]} field is required.")
    elif existing is None and source_ref and ctx.mode == "arm":
        # A clone: a new API with a copy of another's operations, policies and schemas.
        source, _, _ = resolve_api(ctx, _api_name_in(source_ref))
        if source is None:
            raise not_found("Api")
        props = {**{k: v for k, v in source.props.items() if k not in ("apiRevision", "apiVersionSetId")}, **props}
    if patch and existing is not None:
        props = {**existing.props, **props}
    stored = rules.prepare(Write(ctx, kind, None, name if rev is None or not is_current else base, props, existing))
    hidden = not is_current
    shown_name = (existing.name if existing else (base if is_current else f"{base};rev={rev}"))
    entity = _entity(ctx, kind, None, shown_name, stored, existing=existing, path=path, hidden=hidden)
    ctx.view.put(entity)
    if source is not None:
        _copy_children(ctx, source, entity)
    if make_current and hidden:
        entity = make_revision_current(ctx, entity)
    return entity, existing is None


def _api_name_in(reference: str) -> str:
    parts = [p for p in reference.strip().split("/") if p]
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].lower() == "apis":
            return parts[i + 1]
    return parts[-1] if parts else reference


def _copy_children(ctx: Ctx, source: Entity, target: Entity) -> None:
    """Operations, policies, schemas, tags and diagnostics of ``source``, copied below ``target``."""
    for child in ctx.view.tree(source.path):
        if child.path == source.path:
            continue
        _put_moved(ctx, child, source, target, keep_version=False)


def _put_moved(ctx: Ctx, entity: Entity, old_root: Entity, new_root: Entity, *, keep_version: bool) -> None:
    moved = entity.copy()
    moved.path = new_root.path + entity.path[len(old_root.path):]
    moved.rpath = new_root.rpath + entity.rpath[len(old_root.rpath):]
    if not keep_version:
        moved.etag = moved.seq = ctx.view.next_version()
    moved.akey = behaviour(KINDS[moved.kind]).akey(moved)
    ctx.view.put(moved)


def make_revision_current(ctx: Ctx, revision: Entity) -> Entity:
    """Swap ``revision`` (at ``apis/x;rev=N``) with the current one (at ``apis/x``), children included."""
    base = split_revision(revision.name)[0]
    current = ctx.view.get(f"apis/{base.lower()}")
    assert current is not None
    base = current.name
    old_rev = str(current.props.get("apiRevision", "1"))
    current_tree, revision_tree = ctx.view.tree(current.path), ctx.view.tree(revision.path)
    ctx.view.delete_tree(current.path)
    ctx.view.delete_tree(revision.path)
    demoted = Entity(f"apis/{base.lower()};rev={old_rev}", "apis", f"apis/{base};rev={old_rev}",
                     f"{base};rev={old_rev}", current.props, ctx.view.next_version(), current.seq, True, current.akey)
    promoted = Entity(f"apis/{base.lower()}", "apis", f"apis/{current.name}", current.name, revision.props,
                      ctx.view.next_version(), revision.seq, False, revision.akey)
    for root, tree, target in ((current, current_tree, demoted), (revision, revision_tree, promoted)):
        ctx.view.put(target)
        for child in tree:
            if child.path != root.path:
                _put_moved(ctx, child, root, target, keep_version=True)
    return promoted


def delete(ctx: Ctx, kind: Kind, entity: Entity, query: dict[str, str]) -> None:
    rules = behaviour(kind)
    rules.check_delete(ctx, kind, entity, query)
    rules.cascade(ctx, kind, entity, query)
    ctx.view.delete_tree(entity.path)


# -- the configuration document -------------------------------------------------------------------------
def export(entities: list[Entity]) -> dict[str, Any]:
    """The configuration document of a service's entities (deterministic: creation order)."""
    document: dict[str, Any] = {KINDS[key].export_key if key in KINDS else key: [] for key in IMPORT_ORDER}
    document.pop("policy", None)
    items: dict[str, dict[str, Any]] = {}
    # Parents before children; a revision after the current one it is listed under.
    for entity in sorted(entities, key=lambda e: (e.path.count("/"), e.hidden, e.seq)):
        kind = KINDS.get(entity.kind)
        if kind is None:  # users
            item = {"id": entity.name, **entity.props}
            document.setdefault(entity.kind, []).append(item)
            items[entity.path] = item
            continue
        if entity.hidden:  # a revision: beside the current one
            base = items.get(f"apis/{split_revision(entity.name)[0].lower()}")
            item = {"id": entity.name, **entity.props}
            if base is not None:
                base.setdefault("revisions", []).append(item)
            items[entity.path] = item
            continue
        container = document if not entity.parent else items.get(entity.parent)
        if container is None:
            continue
        if kind.singleton is not None:
            container[kind.export_key] = dict(entity.props)
        elif kind.link is not None:
            container.setdefault(kind.export_key, []).append(entity.name)
        else:
            item = {"id": entity.name, **entity.props}
            container.setdefault(kind.export_key, []).append(item)
            items[entity.path] = item
    return document


def import_document(ctx: Ctx, document: Any, *, where: str = "configuration") -> None:
    """Build a whole configuration into ``ctx.view`` (a ``MemoryView``), in dependency order.

    :raises ConfigurationError: naming the entry (``configuration.apis[2].operations[0]``) and the rule.
    """
    if not isinstance(document, dict):
        raise ConfigurationError(f"{where} must be an object")
    unknown = set(document) - set(TOP_LEVEL) - {"policy"}
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted([*TOP_LEVEL, 'policy']))})"
        )
    if tiers.has_builtin_groups(ctx.service.tier):
        _guarded(f"{where}.groups", lambda: ensure_builtin_groups(ctx))
    for key in IMPORT_ORDER:
        if key == "policies":
            continue
        export_key = KINDS[key].export_key if key in KINDS else key
        items = document.get(export_key)
        if items in (None, []):
            continue
        if key == USERS_KEY:
            _import_users(ctx, items, f"{where}.{export_key}")
        else:
            _import_list(ctx, KINDS[key], None, items, f"{where}.{export_key}")
    if tiers.has(ctx.service.tier, "developerPortal"):
        for name, props in PORTAL_DEFAULTS.items():
            if ctx.view.get(f"portalsettings/{name}") is None:
                _guarded(f"{where}.portalSettings", lambda n=name, p=props: put(
                    ctx, KINDS["portalsettings"], None, n, dict(p), existing=None))
    policy = document.get("policy")
    if policy is None:
        policy = {"value": DEFAULT_SERVICE_POLICY, "format": "xml"}
    _import_singleton(ctx, KINDS["policies"], None, policy, f"{where}.policy")


def ensure_builtin_groups(ctx: Ctx) -> None:
    for name, (display, description) in BUILTIN_GROUPS.items():
        if ctx.view.get(f"groups/{name}") is None:
            props = {"displayName": display, "description": description, "builtIn": True, "type": "system"}
            put(ctx, KINDS["groups"], None, name, props, existing=None)


def _guarded(where: str, action: Any) -> Any:
    try:
        return action()
    except ArmError as exc:
        detail = "; ".join(f"{d.get('target')}: {d.get('message')}" for d in exc.details or [])
        raise ConfigurationError(f"{where}: {exc.code} {exc.message} {detail}".strip()) from None


def _item_name(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in LINK_ITEM_KEYS:
            value = item.get(key)
            if isinstance(value, str) and value:
                return value.rsplit("/", 1)[-1]
    raise ConfigurationError(f"{where} needs an 'id' (the entity's name)")


def _import_users(ctx: Ctx, items: Any, where: str) -> None:
    if not isinstance(items, list):
        raise ConfigurationError(f"{where} must be a list")
    if not tiers.has(ctx.service.tier, "users"):
        raise ConfigurationError(f"{where}: the {ctx.service.tier} tier has no users (no developer portal)")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigurationError(f"{where}[{i}] must be an object")
        name = _item_name(item, f"{where}[{i}]")
        props = {k: v for k, v in item.items() if k not in LINK_ITEM_KEYS}
        version = ctx.view.next_version()
        ctx.view.put(Entity(f"users/{name.lower()}", USERS_KEY, f"users/{name}", name, props, version, version))


def _import_list(ctx: Ctx, kind: Kind, parent: Entity | None, items: Any, where: str) -> None:
    if not isinstance(items, list):
        raise ConfigurationError(f"{where} must be a list")
    if kind.feature is not None and not tiers.has(ctx.service.tier, kind.feature):
        raise ConfigurationError(f"{where}: the {ctx.service.tier} tier has no {kind.segment}")
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        name = _item_name(item, here)
        problem = kind.name.problem(split_revision(name)[0] if kind.key == "apis" else name)
        if problem is not None:
            raise ConfigurationError(f"{here}: '{name}' is not a valid {kind.name.parameter}: it {problem}")
        if kind.link is not None:
            if link_target(ctx, kind, name) is None and ctx.mode == "admin":
                continue  # an admin change removed the target: APIM's delete would have removed the link
            _guarded(here, lambda n=name: put(ctx, kind, parent, n, {}, existing=None))
            continue
        if not isinstance(item, dict):
            raise ConfigurationError(f"{here} must be an object")
        children = {key: KINDS[key] for key in CHILD_ORDER.get(kind.key, ())}
        reserved = {*LINK_ITEM_KEYS, *(c.export_key for c in children.values())}
        if kind.key == "apis":
            reserved.add("revisions")
        props = {k: v for k, v in item.items() if k not in reserved}
        existing = ctx.view.get(path_of(parent, kind, name)) if kind.key != "apis" else resolve_api(ctx, name)[0]
        entity, _ = _guarded(here, lambda n=name, p=props, e=existing: put(ctx, kind, parent, n, p, existing=e))
        for child in children.values():
            value = item.get(child.export_key)
            if value is None:
                continue
            if child.singleton is not None:
                _import_singleton(ctx, child, entity, value, f"{here}.{child.export_key}")
            else:
                _import_list(ctx, child, entity, value, f"{here}.{child.export_key}")
        if kind.key == "apis" and item.get("revisions"):
            _import_list(ctx, kind, None, item["revisions"], f"{here}.revisions")


def _import_singleton(ctx: Ctx, kind: Kind, parent: Entity | None, value: Any, where: str) -> None:
    props = {"value": value, "format": "xml"} if isinstance(value, str) else value
    if not isinstance(props, dict):
        raise ConfigurationError(f"{where} must be a policy document (a string) or {{value, format}}")
    assert kind.singleton is not None
    existing = ctx.view.get(path_of(parent, kind, kind.singleton))
    _guarded(where, lambda: put(ctx, kind, parent, kind.singleton or "policy", dict(props), existing=existing))


def build(ctx: Ctx, document: Any, *, where: str = "configuration") -> list[Entity]:
    """The entities of ``document`` (``ctx.view`` must be a fresh ``MemoryView``)."""
    assert isinstance(ctx.view, MemoryView)
    import_document(ctx, document, where=where)
    return ctx.view.entities()


def canonical(document: dict[str, Any]) -> str:
    """A stable text form of a configuration document (to share built entities between equal seeds)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))
