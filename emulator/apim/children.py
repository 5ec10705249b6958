"""The configuration child resources over HTTP: GET, list, HEAD, PUT, PATCH, DELETE and actions.

One handler for every kind in ``kinds.KINDS``; what differs per kind is in the table and in
``contracts.py``. Shared rules, from the specification:

- an entity answers with ``ETag: "<version>"`` (GET, HEAD, PUT, PATCH); ``If-Match`` on PUT is optional,
  on PATCH and DELETE required (``IfMatchRequiredParameter``), ``*`` matches any existing version; a
  mismatch is 412 ``PreconditionFailed``;
- PUT answers 201 when it created the entity, 200 when it replaced it; DELETE 200 when it deleted,
  204 when there was nothing to delete (Api_Delete: 204 both ways, its spec has no 200);
- lists page by ``$top``/``$skip`` with ``nextLink`` (x-ms-pageable) and carry ``count`` where the
  collection definition has it;
- unknown entities are 404 ``ResourceNotFound`` "{Entity} not found.".

Writes hold the service's lock and one store transaction: a request sees and leaves a consistent
configuration, and a restore (which replaces it) never interleaves with one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import configuration, contracts, reports, tiers
from .entity import Entity
from .errors import ArmError, entity_error, not_found, validation_error
from .kinds import KINDS, ChildRoute, Kind
from .resources import api_version_date, service_id
from .state import iso
from .views import Ctx, ServiceInfo, StoreView
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .operations import Engine

MAX_CHILD_BODY_BYTES = 4 * 1024 * 1024  # schema documents are up to 4 MB (service limits)


class ChildApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle(self, req: Request, route: ChildRoute, svc: dict[str, Any], api_version: str) -> Response:
        kind = route.kind
        self._check_available(kind, svc, api_version)
        for index, name in enumerate(route.names):
            owner = KINDS["/".join(kind.parts[: index + 1])]
            check = contracts.split_revision(name)[0] if owner.key in ("apis", "products/apis") else name
            problem = owner.name.problem(check)
            if problem is not None:
                raise validation_error(owner.name.parameter, f"'{name}' is not a valid {owner.name.parameter}: it "
                                                             f"{problem}.")
        if route.operation in ("get", "head", "list"):
            ctx = self._ctx(svc, api_version)
            if kind.key == "reports":
                return self._report(req, ctx, route, api_version)
            if route.operation == "list":
                return self._list(req, ctx, route, api_version)
            return self._read(req, ctx, route)
        with self.engine.service_write(svc["name"]):
            ctx = self._ctx(svc, api_version)
            if route.operation == "action":
                return self._action(req, ctx, route)
            if route.operation == "delete":
                return self._delete(req, ctx, route)
            return self._put(req, ctx, route, patch=route.operation == "patch")

    # -- helpers -----------------------------------------------------------------------------------
    def _ctx(self, svc: dict[str, Any], api_version: str) -> Ctx:
        info = ServiceInfo(
            name=svc["name"],
            resource_id=service_id(svc["subscriptionId"], svc["resourceGroup"], svc["name"]),
            tier=svc["sku"]["name"],
            identity=svc.get("identity"),
            now_iso=iso(self.engine.clock.now()),
        )
        return Ctx(StoreView(self.engine.store, svc["name"]), info, "arm", api_version)

    @staticmethod
    def _check_available(kind: Kind, svc: dict[str, Any], api_version: str) -> None:
        if api_version_date(api_version) < kind.min_version:
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location '{svc['location']}' and API version "
                f"'{api_version}' for type '{kind.arm_type.split('/', 1)[1]}'. The type appears in api-versions from "
                f"{kind.min_version} on.",
            )
        tier = svc["sku"]["name"]
        for depth in range(1, len(kind.parts) + 1):
            tiers.require(tier, KINDS["/".join(kind.parts[:depth])].feature)

    def _parent(self, ctx: Ctx, route: ChildRoute) -> Entity | None:
        """The entity that holds the addressed collection or entity (None: the service)."""
        count = len(route.names) - (1 if route.is_entity else 0)
        if route.operation == "action":
            count = len(route.names) - 1
        parent: Entity | None = None
        for index in range(count):
            owner = KINDS["/".join(route.kind.parts[: index + 1])]
            name = route.names[index]
            if owner.key == "apis":
                found, _, _ = configuration.resolve_api(ctx, name)
            else:
                found = ctx.view.get(contracts.path_of(parent, owner, name))
            if found is None:
                raise not_found(owner.entity)
            parent = found
        return parent

    def _lookup(self, ctx: Ctx, route: ChildRoute, parent: Entity | None) -> Entity | None:
        kind, name = route.kind, route.names[-1]
        if kind.key == "apis":
            return configuration.resolve_api(ctx, name)[0]
        if kind.singleton is not None and name.lower() != kind.singleton:
            return None
        return ctx.view.get(contracts.path_of(parent, kind, name))

    def _entity_response(self, status: int, ctx: Ctx, kind: Kind, entity: Entity, *, name: str | None = None,
                         body: dict[str, Any] | None = None) -> Response:
        payload = body if body is not None else contracts.render(ctx, kind, entity, name=name)
        return json_response(status, payload, {"ETag": f'"{contracts.etag_text(entity)}"'})

    def _shown_name(self, route: ChildRoute, entity: Entity) -> str | None:
        """An API addressed by ``x;rev=N`` answers under that name."""
        if route.kind.key == "apis" and contracts.split_revision(route.names[-1])[1] is not None:
            return f"{contracts.split_revision(entity.name)[0]};rev={entity.props.get('apiRevision', '1')}"
        return None

    # -- reads -------------------------------------------------------------------------------------
    def _read(self, req: Request, ctx: Ctx, route: ChildRoute) -> Response:
        parent = self._parent(ctx, route)
        kind = route.kind
        entity = self._lookup(ctx, route, parent)
        if entity is None:
            raise not_found(kind.entity)
        if route.operation == "head":
            if kind.head_status == 204:
                return Response(204)
            return Response(200, b"", {"ETag": f'"{contracts.etag_text(entity)}"'})
        if kind.link is not None:
            target = contracts.link_target(ctx, kind, entity.name)
            if target is None:
                raise not_found(KINDS[kind.link].entity)
            return self._entity_response(200, ctx, kind, entity, body=contracts.render_link(ctx, kind, entity, target))
        response = self._entity_response(200, ctx, kind, entity, name=self._shown_name(route, entity))
        wanted = req.param("format")
        if kind.singleton is not None and wanted:
            body = json.loads(response.body)
            body["properties"]["format"] = contracts.check_field(
                "format", kind.fields["format"], wanted)
            response.body = json.dumps(body).encode()
        return response

    def _list(self, req: Request, ctx: Ctx, route: ChildRoute, api_version: str) -> Response:
        if req.param("$filter"):
            raise validation_error("$filter", "The emulator does not support $filter; list without it.")
        top = _int_param(req.param("$top"), "$top", minimum=1)
        skip = _int_param(req.param("$skip"), "$skip", minimum=0) or 0
        parent = self._parent(ctx, route)
        kind = route.kind
        page_size = int(self.engine.settings()["pageSize"])
        size = min(top, page_size) if top is not None else page_size
        store, service = self.engine.store, ctx.service.name
        if kind.virtual:
            everything = self._virtual(ctx, kind, parent)
            total, items = len(everything), everything[skip : skip + size]
        elif not kind.paged:
            rows = store.entity_children(service, parent.path if parent else "", kind.key)
            total, items, size = len(rows), [self._item(ctx, kind, e) for e in rows], len(rows) or 1
        else:
            parent_path = parent.path if parent else ""
            total = store.entity_count(service, parent_path, kind.key)
            rows = store.entity_children(service, parent_path, kind.key, offset=skip, limit=size)
            items = [self._item(ctx, kind, e) for e in rows]
        payload: dict[str, Any] = {"value": items}
        if kind.counted:
            payload["count"] = total
        following = skip + len(items)
        if kind.paged and items and following < total:
            query = f"api-version={api_version}" + (f"&$top={top}" if top is not None else "") + f"&$skip={following}"
            payload["nextLink"] = f"{req.base_url}{req.path}?{query}"
        return json_response(200, payload)

    def _item(self, ctx: Ctx, kind: Kind, entity: Entity) -> dict[str, Any]:
        if kind.link is None:
            return contracts.render(ctx, kind, entity)
        target = contracts.link_target(ctx, kind, entity.name)
        if target is None:  # cannot happen: deleting a target deletes its links
            return contracts.render(ctx, kind, entity)
        return contracts.render_link(ctx, kind, entity, target)

    def _virtual(self, ctx: Ctx, kind: Kind, parent: Entity | None) -> list[dict[str, Any]]:
        assert parent is not None
        base = contracts.split_revision(parent.name)[0]
        if kind.key == "apis/products":
            products = []
            for link in ctx.view.by_akey(("products/apis",), base.lower()):
                product = ctx.view.get(link.parent)
                if product is not None:
                    products.append(contracts.render(ctx, KINDS["products"], product))
            return products
        # apis/revisions: the current revision and the others, in revision order.
        current = ctx.view.get(f"apis/{base.lower()}")
        revisions = contracts.other_revisions(ctx, base)
        if current is not None:
            revisions.append(current)
        revisions.sort(key=lambda e: int(str(e.props.get("apiRevision", "1")) or 1))
        shown_base = current.name if current is not None else base
        return [_revision_contract(ctx, e, shown_base) for e in revisions]

    def _report(self, req: Request, ctx: Ctx, route: ChildRoute, api_version: str) -> Response:
        which = route.names[-1].lower()
        if which not in reports.REPORTS:
            raise ArmError(404, "NotFound", f"The emulator does not serve the '{route.names[-1]}' report (it serves "
                                            f"{', '.join(reports.REPORTS.values())}).")
        query = {key: values[0] for key, values in req.query.items() if values}
        records = reports.order(reports.report(ctx, which, query, self.engine.clock.now()), query.get("$orderby"))
        top = _int_param(req.param("$top"), "$top", minimum=1)
        skip = _int_param(req.param("$skip"), "$skip", minimum=0) or 0
        size = min(top, int(self.engine.settings()["pageSize"])) if top else int(self.engine.settings()["pageSize"])
        page = records[skip : skip + size]
        payload: dict[str, Any] = {"value": page, "count": len(records)}
        if page and skip + len(page) < len(records):
            kept = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items()
                            if k not in ("api-version", "$skip", "$top"))
            payload["nextLink"] = (f"{req.base_url}{req.path}?api-version={api_version}&{kept}"
                                   + (f"&$top={top}" if top else "") + f"&$skip={skip + len(page)}")
        return json_response(200, payload)

    # -- writes ------------------------------------------------------------------------------------
    def _put(self, req: Request, ctx: Ctx, route: ChildRoute, *, patch: bool) -> Response:
        kind = route.kind
        name = route.names[-1]
        parent = self._parent(ctx, route)
        if kind.singleton is not None and name.lower() != kind.singleton:
            raise validation_error(kind.name.parameter, f"'{name}' is not a valid {kind.name.parameter}: the only "
                                                        f"value is '{kind.singleton}'.")
        props = _body_properties(req, required=kind.link is None)
        existing = self._lookup(ctx, route, parent)
        if patch and existing is None:
            raise not_found(kind.entity)
        _check_if_match(req, existing, required=patch)
        if kind.link is not None:
            if existing is not None:
                target = contracts.link_target(ctx, kind, existing.name)
                assert target is not None
                return self._entity_response(200, ctx, kind, existing,
                                             body=contracts.render_link(ctx, kind, existing, target))
            name = contracts.split_revision(name)[0] if kind.link == "apis" else name
        if kind.key == "portalsettings":
            name = name.lower()
        entity, created = configuration.put(ctx, kind, parent, name, props, existing=existing, patch=patch)
        if patch and kind.patch_status == 204:
            return Response(204)
        status = 201 if created and kind.creates else 200
        if kind.link is not None:
            target = contracts.link_target(ctx, kind, entity.name)
            assert target is not None
            return self._entity_response(status, ctx, kind, entity,
                                         body=contracts.render_link(ctx, kind, entity, target))
        return self._entity_response(status, ctx, kind, entity, name=self._shown_name(route, entity))

    def _delete(self, req: Request, ctx: Ctx, route: ChildRoute) -> Response:
        kind = route.kind
        parent = self._parent(ctx, route)
        entity = self._lookup(ctx, route, parent)
        if kind.link is None and not req.header("if-match"):
            raise validation_error("If-Match", "The If-Match header is required: the entity's ETag, or '*'.")
        if entity is None:
            return Response(204)
        if kind.link is None:
            _check_if_match(req, entity, required=True)
        query = {key.lower(): values[0] for key, values in req.query.items() if values}
        if kind.key == "apis" and contracts.split_revision(route.names[-1])[1] is not None:
            query["addressed_revision"] = "true"
        configuration.delete(ctx, kind, entity, query)
        return Response(204 if kind.api_delete else 200)

    def _action(self, req: Request, ctx: Ctx, route: ChildRoute) -> Response:
        kind, action = route.kind, route.action
        parent = self._parent(ctx, route)
        entity = self._lookup(ctx, route, parent)
        if entity is None:
            raise not_found(kind.entity)
        etag = {"ETag": f'"{contracts.etag_text(entity)}"'}
        if action == "listvalue":
            value = entity.props.get("value")
            if value is None:
                raise entity_error(400, "ValidationError",
                                   f"The emulator holds no value for Key Vault named value '{entity.name}': it reads "
                                   "no Key Vault (give the value in the seed to have listValue return it).")
            return json_response(200, {"value": value}, etag)
        if action == "refreshsecret":
            if entity.props.get("keyVault") is None:
                raise entity_error(
                    400, "ValidationError", f"{kind.entity} '{entity.name}' is not a Key Vault reference."
                )
            refreshed = entity.copy()
            refreshed.etag = ctx.view.next_version()
            ctx.view.put(refreshed)
            return self._entity_response(200, ctx, kind, refreshed)
        if action == "listreferences":
            users = contracts.fragment_users(ctx, entity.name)
            value = [{"id": contracts.resource_id(ctx, e.rpath), "name": e.name, "type": KINDS[e.kind].arm_type}
                     for e in users]
            return json_response(200, {"value": value, "count": len(value)})
        if action == "listsecrets" and kind.key == "portalsettings":
            if entity.name.lower() != "delegation":
                raise not_found(kind.entity)
            return json_response(200, {"validationKey": entity.props.get("validationKey")}, etag)
        if action == "listsecrets":
            return json_response(200, {"primaryKey": entity.props["primaryKey"],
                                       "secondaryKey": entity.props["secondaryKey"]}, etag)
        if action == "reconnect":
            # Backend_Reconnect: 202, the gateway drops its connections to the backend (there is no gateway).
            return Response(202)
        if action in ("regenerateprimarykey", "regeneratesecondarykey"):
            changed = entity.copy()
            key = "primaryKey" if action == "regenerateprimarykey" else "secondaryKey"
            changed.props[key] = contracts.new_subscription_key()
            changed.etag = ctx.view.next_version()
            ctx.view.put(changed)
            return Response(204)
        raise AssertionError(f"unrouted action {action}")


def _revision_contract(ctx: Ctx, entity: Entity, base: str) -> dict[str, Any]:
    rev = str(entity.props.get("apiRevision", "1"))
    path = str(entity.props.get("path", "")).strip("/")
    return {
        "apiId": contracts.resource_id(ctx, f"apis/{base};rev={rev}"),
        "apiRevision": rev,
        "createdDateTime": iso(entity.seq / 1_000_000),
        "updatedDateTime": iso(entity.etag / 1_000_000),
        "description": entity.props.get("apiRevisionDescription"),
        "privateUrl": None if not entity.hidden else f"/{path};rev={rev}",
        "isOnline": True,
        "isCurrent": not entity.hidden,
    }


def _body_properties(req: Request, *, required: bool) -> dict[str, Any]:
    """The ``properties`` of a PUT/PATCH body (links take none)."""
    if len(req.body) > MAX_CHILD_BODY_BYTES:
        raise validation_error("parameters", f"The request content is larger than {MAX_CHILD_BODY_BYTES} bytes.")
    if not req.body.strip():
        if required:
            raise validation_error("parameters", "The request body is required.")
        return {}
    try:
        body = json.loads(req.body)
    except (ValueError, RecursionError):
        raise validation_error("parameters", "The request content is not valid JSON.") from None
    if not isinstance(body, dict):
        raise validation_error("parameters", "The request content must be a JSON object.")
    props = body.get("properties", {} if not required else None)
    if props is None:
        raise validation_error("properties", "The properties field is required.")
    if not isinstance(props, dict):
        raise validation_error("properties", "properties must be an object.")
    return props


def _check_if_match(req: Request, entity: Entity | None, *, required: bool) -> None:
    header = req.header("if-match")
    if header is None or header.strip() == "":
        if required:
            raise validation_error("If-Match", "The If-Match header is required: the entity's ETag, or '*'.")
        return
    wanted = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    if entity is not None and ("*" in wanted or contracts.etag_text(entity) in wanted):
        return
    raise entity_error(
        412,
        "PreconditionFailed",
        "The entity's version does not match the If-Match header: the entity was modified (or does not exist). "
        "Read it again to get its current ETag.",
    )


def _int_param(text: str | None, name: str, *, minimum: int) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or int(text) < minimum:
        raise validation_error(name, f"'{name}' must be an integer of at least {minimum}.")
    return int(text)
