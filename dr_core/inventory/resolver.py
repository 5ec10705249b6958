"""Which APIM instances are protected, and the one resolver every path uses to find them.

Protected instances are the configured list (``APIM_DR_INSTANCES``) plus those found by tag
discovery (``APIM_DR_DISCOVERY_SUBSCRIPTIONS``). Backups, the catalog, restores and the CLI
all resolve a reference (resource ID, alias or service name) through
:class:`InstanceResolver`, so an instance that can be backed up can also be listed and restored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dr_core.kernel.errors import DrError, InvalidRequestError, NotFoundError
from dr_core.kernel.ids import ApimResourceId, InvalidResourceIdError
from dr_core.kernel.settings import ProtectedInstance, Settings

if TYPE_CHECKING:
    from dr_core.ports import ApimManagement

__all__ = ["InstanceResolver", "Inventory", "Resolved", "UnknownInstanceError"]

logger = logging.getLogger(__name__)

_MAX_REFERENCE = 400


class UnknownInstanceError(NotFoundError):
    """An instance reference that matches no protected instance (or standby, where standbys count)."""


@dataclass
class Inventory:
    instances: list[ProtectedInstance]
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    """A resolved reference: the instance's ID, and its protection options unless it is only a standby."""

    resource_id: ApimResourceId
    protected: ProtectedInstance | None


class InstanceResolver:
    """Finds instances by resource ID, alias or service name, among configured and discovered ones.

    Discovery (ARM list calls) runs at most once per resolver, and only when it is configured
    and needed: a reference found in the configured list never triggers it.
    """

    def __init__(self, settings: Settings, arm: ApimManagement | None) -> None:
        self._settings = settings
        self._arm = arm
        self._inventory: Inventory | None = None

    @property
    def configured(self) -> list[ProtectedInstance]:
        return list(self._settings.instances)

    def inventory(self) -> Inventory:
        """Configured instances, then tagged ones from discovery (each subscription on its own).

        A failing subscription or a bad entry is reported in ``problems`` and skipped; the
        other instances are still returned.
        """
        if self._inventory is None:
            self._inventory = self._discover()
        return self._inventory

    def _discover(self) -> Inventory:
        settings = self._settings
        inventory = Inventory(list(settings.instances), list(settings.instance_errors))
        if not settings.discovery_subscriptions or self._arm is None:
            return inventory
        known = {inst.resource_id.key for inst in inventory.instances}
        for subscription in settings.discovery_subscriptions:
            try:
                found = self._arm.list_tagged(subscription, settings.discovery_tag)
            except DrError as e:
                inventory.problems.append(
                    f"APIM_DR_DISCOVERY_SUBSCRIPTIONS: listing subscription {subscription} failed: ({e.error_code}) "
                    f"{e.message} -- {e.remediation}")
                continue
            for info in found:
                if info.resource_id.key in known:
                    continue
                known.add(info.resource_id.key)
                inventory.instances.append(settings.discovered_instance(info.resource_id))
        return inventory

    def protected(self, reference: object) -> ProtectedInstance:
        """A protected instance (configured or discovered).

        :raises InvalidRequestError: ``reference`` is not a sane string or names several instances.
        :raises UnknownInstanceError: it names no protected instance.
        """
        found = self._find(reference, standbys=False)
        assert found.protected is not None
        return found.protected

    def named(self, service: object) -> ProtectedInstance:
        """:meth:`protected` for a request's ``service`` parameter: a bad reference is reported as that field.

        :raises InvalidRequestError: (``service: ...``) not a sane reference. :raises UnknownInstanceError:
            it names no protected instance.
        """
        try:
            return self.protected(service)
        except InvalidRequestError as e:
            raise InvalidRequestError(f"service: {e.message}", fields={"service": e.message}) from e

    def select(self, service: object | None) -> Inventory:
        """The one instance ``service`` names (see :meth:`named`), or, when None, every protected one with the
        inventory's problems (bad entries, failed discovery)."""
        if service is None:
            inventory = self.inventory()
            return Inventory(list(inventory.instances), list(inventory.problems))
        return Inventory([self.named(service)])

    def instance_or_standby(self, reference: object) -> Resolved:
        """A protected instance, or a configured standby or drill target of one (restore targets and sources)."""
        return self._find(reference, standbys=True)

    def primary_of(self, standby: ApimResourceId) -> ProtectedInstance | None:
        """The protected instance whose configured standby (or, failing that, drill target) is ``standby``."""
        candidates = self._candidates_now()
        for inst in candidates:
            if inst.standby is not None and inst.standby.key == standby.key:
                return inst
        for inst in candidates:
            drill = inst.posture.drill_target
            if drill is not None and drill.key == standby.key:
                return inst
        return None

    def is_protected(self, resource_id: ApimResourceId) -> bool:
        """Whether the instance is protected, discovered ones included (runs discovery once if configured):
        a standby or drill target may have been tagged for backup since it was named."""
        return any(i.resource_id.key == resource_id.key for i in self.inventory().instances)

    def protected_keys(self) -> frozenset[str]:
        """Keys of every protected instance known without new ARM calls (for the primary check)."""
        return frozenset(i.resource_id.key for i in self._candidates_now())

    def _candidates_now(self) -> list[ProtectedInstance]:
        return self._inventory.instances if self._inventory is not None else self.configured

    def _find(self, reference: object, *, standbys: bool) -> Resolved:
        text = _check_reference(reference)
        found = _match(text, self.configured, standbys=standbys)
        if found is None and self._settings.discovery_subscriptions:
            found = _match(text, self.inventory().instances, standbys=standbys)
        if found is None:
            what = ("a protected instance, a configured standby or a drill target" if standbys
                    else "a protected instance")
            raise UnknownInstanceError(
                f"{text[:80]!r} is not {what} (by resource ID, alias or service name; "
                "see APIM_DR_INSTANCES and the discovery tag)")
        return found


def _check_reference(reference: object) -> str:
    if not isinstance(reference, str) or not reference.strip():
        raise InvalidRequestError("expected an APIM resource ID, a configured alias or a service name")
    text = reference.strip()
    if len(text) > _MAX_REFERENCE:
        raise InvalidRequestError(f"instance reference is too long (at most {_MAX_REFERENCE} characters)")
    return text


def _match(reference: str, instances: list[ProtectedInstance], *, standbys: bool) -> Resolved | None:
    """The instance ``reference`` names: by resource ID when it starts with ``/``, else by alias or service name."""
    if reference.startswith("/"):
        return _match_id(reference, instances, standbys=standbys)
    return _match_name(reference, instances, standbys=standbys)


def _match_id(reference: str, instances: list[ProtectedInstance], *, standbys: bool) -> Resolved | None:
    try:
        rid = ApimResourceId.parse(reference)
    except InvalidResourceIdError as e:
        raise InvalidRequestError(str(e)) from e
    found = next((Resolved(i.resource_id, i) for i in instances if i.resource_id.key == rid.key), None)
    if found is None and standbys:
        found = next((Resolved(other, None) for other in _restore_targets(instances) if other.key == rid.key), None)
    return found


def _match_name(reference: str, instances: list[ProtectedInstance], *, standbys: bool) -> Resolved | None:
    lowered = reference.lower()
    aliased = next((i for i in instances if i.alias and i.alias.lower() == lowered), None)
    if aliased is not None:
        return Resolved(aliased.resource_id, aliased)
    matches = [Resolved(i.resource_id, i) for i in instances if i.name.lower() == lowered]
    if standbys:
        seen = {m.resource_id.key for m in matches}
        for other in _restore_targets(instances):
            if other.service_name.lower() == lowered and other.key not in seen:
                seen.add(other.key)
                matches.append(Resolved(other, None))
    if len(matches) > 1:
        raise InvalidRequestError(f"{reference!r} names several instances; use the full resource ID")
    return matches[0] if matches else None


def _restore_targets(instances: list[ProtectedInstance]) -> list[ApimResourceId]:
    """Instances that are restored into without being protected: standbys, then drill targets."""
    standbys = [inst.standby for inst in instances if inst.standby is not None]
    drills = [inst.posture.drill_target for inst in instances if inst.posture.drill_target is not None]
    return standbys + drills
