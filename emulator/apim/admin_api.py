"""Test-only admin endpoints under ``/_emulator/`` (no authentication; never part of real Azure).

Every endpoint takes and returns JSON. Errors answer ``{"error": "<reason>"}`` with 400 or 404.
The list is in emulator/README.md ("Admin endpoints").
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

from .operations import Engine
from .seed import SeedError, check_arm_roles
from .state import iso
from .wire import Request, Response, json_response

logger = logging.getLogger(__name__)

PREFIX = "/_emulator"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_body(req: Request) -> Any:
    if not req.body.strip():
        return {}
    try:
        return json.loads(req.body)
    except (ValueError, RecursionError):
        raise AdminError(400, "the body must be JSON") from None


def _object_body(req: Request) -> dict[str, Any]:
    body = _json_body(req)
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


class AdminApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle(self, req: Request) -> Response:
        try:
            return self._route(req)
        except AdminError as exc:
            return json_response(exc.status, {"error": str(exc)})
        except (ValueError, SeedError) as exc:
            return json_response(400, {"error": str(exc)})
        except KeyError as exc:
            return json_response(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})

    def _route(self, req: Request) -> Response:
        parts = [unquote(p) for p in req.path[len(PREFIX) :].strip("/").split("/") if p]
        method = req.method
        engine = self.engine
        if not parts:
            raise AdminError(404, "see emulator/README.md for the admin endpoints")
        head, rest = parts[0], parts[1:]

        if head == "health" and method == "GET":
            return json_response(200, {"status": "ok", "now": iso(engine.clock.now())})
        if head == "reset" and method == "POST":
            engine.reset()
            return json_response(200, {"status": "reset"})
        if head == "tick" and method == "POST":
            return json_response(200, {"completed": engine.complete_due()})
        if head == "clock":
            return self._clock(method, req)
        if head == "requests":
            return self._requests(method, req)
        if head == "services":
            return self._services(method, rest, req)
        if head == "operations" and method == "GET":
            engine.complete_due()
            if rest:
                op = engine.operation(rest[0])
                if op is None:
                    raise KeyError(rest[0])
                return json_response(200, op)
            service = req.param("service")
            return json_response(200, {"value": engine.store.operations(service=service)})
        if head == "faults":
            return self._faults(method, rest, req)
        if head == "settings":
            if method == "GET":
                return json_response(200, engine.settings())
            if method in ("PUT", "PATCH", "POST"):
                return json_response(200, engine.update_settings(_object_body(req)))
        if head == "arm-roles":
            if method == "GET":
                return json_response(200, {"roles": engine.store.get("armRoles")})
            if method == "PUT":
                body = _object_body(req)
                if "roles" not in body:
                    raise AdminError(
                        400, 'send {"roles": {<principal oid>: [{"actions": [...], "scope": "..."}]} | null}'
                    )
                with engine.lock:
                    engine.store.put("armRoles", check_arm_roles(body["roles"]))
                return json_response(200, {"roles": engine.store.get("armRoles")})
        if head == "storage-accounts":
            return self._storage_accounts(method, rest, req)
        if head == "state" and method == "GET":
            with engine.lock:
                return json_response(
                    200,
                    {
                        "tenantId": engine.store.get("tenantId"),
                        "subscriptions": engine.store.get("subscriptions"),
                        "functionApp": engine.store.get("functionApp"),
                        "armRoles": engine.store.get("armRoles"),
                        "settings": engine.settings(),
                        "faults": engine.faults(),
                        "clock": self._clock_view(),
                    },
                )
        raise AdminError(404 if method in ("GET", "DELETE") else 405, f"no admin endpoint {method} {req.path}")

    def _clock_view(self) -> dict[str, Any]:
        now = self.engine.clock.now()
        return {"now": iso(now), "epoch": now, "offsetSeconds": self.engine.clock.offset}

    def _clock(self, method: str, req: Request) -> Response:
        if method == "GET":
            return json_response(200, self._clock_view())
        if method == "POST":
            body = _object_body(req)
            seconds = body.get("advanceSeconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise AdminError(400, 'send {"advanceSeconds": <seconds >= 0>} (the clock only moves forward)')
            with self.engine.lock:
                self.engine.clock.advance(float(seconds))
            self.engine.complete_due()
            return json_response(200, self._clock_view())
        raise AdminError(405, "GET or POST /_emulator/clock")

    def _requests(self, method: str, req: Request) -> Response:
        if method == "DELETE":
            with self.engine.lock:
                self.engine.store.clear_requests()
            return json_response(200, {"value": []})
        if method != "GET":
            raise AdminError(405, "GET or DELETE /_emulator/requests")
        wanted_method = req.param("method")
        contains = req.param("pathContains")
        server = req.param("server")
        with self.engine.lock:
            entries = self.engine.store.requests()
        entries = [
            e
            for e in entries
            if (not wanted_method or e["method"].upper() == wanted_method.upper())
            and (not contains or contains.lower() in e["path"].lower())
            and (not server or e.get("server") == server)
        ]
        return json_response(200, {"value": entries})

    def _services(self, method: str, rest: list[str], req: Request) -> Response:
        engine = self.engine
        engine.complete_due()
        if not rest:
            if method != "GET":
                raise AdminError(405, "GET /_emulator/services")
            with engine.lock:
                names = [s["name"] for s in engine.store.services()]
            return json_response(200, {"value": [engine.service_view(n) for n in names]})
        name = rest[0]
        if method == "GET":
            view = engine.service_view(name)
            if view is None:
                raise KeyError(name)
            return json_response(200, view)
        if method in ("PUT", "PATCH"):
            engine.update_service(name, _object_body(req))
            return json_response(200, engine.service_view(name))
        raise AdminError(405, "GET, PUT or PATCH /_emulator/services/{name}")

    def _faults(self, method: str, rest: list[str], req: Request) -> Response:
        engine = self.engine
        if method == "GET":
            return json_response(200, {"value": engine.faults()})
        if method == "POST":
            return json_response(201, engine.add_fault(_object_body(req)))
        if method == "DELETE":
            engine.clear_faults(rest[0] if rest else None)
            return json_response(200, {"value": engine.faults()})
        raise AdminError(405, "GET, POST or DELETE /_emulator/faults")

    def _storage_accounts(self, method: str, rest: list[str], req: Request) -> Response:
        engine = self.engine
        with engine.lock:
            accounts = engine.store.get("storageAccounts", {})
            if not rest:
                return json_response(200, {"value": list(accounts.values())})
            name = rest[0]
            if name not in accounts:
                raise KeyError(name)
            if method == "GET":
                return json_response(200, accounts[name])
            if method in ("PUT", "PATCH"):
                body = _object_body(req)
                # The key is fixed: Azurite was started with it.
                unknown = set(body) - {"roleAssignments"}
                if unknown:
                    raise AdminError(400, f"cannot change {', '.join(sorted(unknown))} (only roleAssignments)")
                if "roleAssignments" in body:
                    assignments = body["roleAssignments"]
                    if not isinstance(assignments, list) or not all(
                        isinstance(a, dict) and isinstance(a.get("principalId"), str) and isinstance(a.get("role"), str)
                        for a in assignments
                    ):
                        raise AdminError(400, "roleAssignments must be a list of {principalId, role}")
                    accounts[name]["roleAssignments"] = assignments
                engine.store.put("storageAccounts", accounts)
                return json_response(200, accounts[name])
        raise AdminError(405, "GET, PUT or PATCH /_emulator/storage-accounts/{name}")
