"""Which APIM instances are protected: the configured list plus those found by tag discovery."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .ids import ApimResourceId, InvalidResourceIdError
from .settings import ProtectedInstance, Settings

__all__ = ["Inventory", "UnknownInstanceError", "protected_instances", "resolve_instance"]

logger = logging.getLogger(__name__)


class UnknownInstanceError(LookupError):
    """An instance reference that matches no protected instance."""


@dataclass
class Inventory:
    instances: list[ProtectedInstance]
    problems: list[str] = field(default_factory=list)


def protected_instances(settings: Settings, *, discover: bool = True, operations: object = None) -> Inventory:
    """Configured instances, then tagged ones from discovery (each subscription on its own).

    A failing subscription or a bad entry is reported in ``problems`` and skipped; the
    other instances are still returned.
    """
    inventory = Inventory(list(settings.instances), list(settings.instance_errors))
    if not (discover and settings.discovery_subscriptions):
        return inventory
    from .arm import ApimOperations, ArmCallError

    assert isinstance(operations, ApimOperations)
    known = {inst.resource_id.key for inst in inventory.instances}
    for subscription in settings.discovery_subscriptions:
        try:
            found = operations.list_tagged(subscription, settings.discovery_tag)
        except ArmCallError as e:
            inventory.problems.append(
                f"APIM_DR_DISCOVERY_SUBSCRIPTIONS: listing subscription {subscription} failed: ({e.error.code}) "
                f"{e.error.message} -- {e.error.remediation}")
            continue
        for info in found:
            if info.resource_id.key in known:
                continue
            known.add(info.resource_id.key)
            inventory.instances.append(ProtectedInstance(
                resource_id=info.resource_id,
                container=settings.backup_container,
                access_type=settings.access_type,
                client_id=settings.identity_client_id,
            ))
    return inventory


def resolve_instance(reference: object, instances: list[ProtectedInstance]) -> ProtectedInstance:
    """Find a protected instance by resource ID, alias or service name.

    :raises UnknownInstanceError: naming what was looked for.
    :raises ValueError: if ``reference`` is not a string of sane length.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError("expected an APIM resource ID, a configured alias or a service name")
    reference = reference.strip()
    if len(reference) > 400:
        raise ValueError("instance reference is too long (at most 400 characters)")
    if reference.startswith("/"):
        try:
            rid = ApimResourceId.parse(reference)
        except InvalidResourceIdError as e:
            raise ValueError(str(e)) from e
        for inst in instances:
            if inst.resource_id.key == rid.key:
                return inst
        raise UnknownInstanceError(f"{rid} is not a protected instance (APIM_DR_INSTANCES or discovery tag)")
    lowered = reference.lower()
    by_alias = [i for i in instances if i.alias and i.alias.lower() == lowered]
    if by_alias:
        return by_alias[0]
    by_name = [i for i in instances if i.name.lower() == lowered]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise UnknownInstanceError(f"{reference!r} names several instances; use the full resource ID")
    raise UnknownInstanceError(f"{reference[:60]!r} is not a protected instance (no matching resource ID, alias "
                               "or service name)")
