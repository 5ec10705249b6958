"""Region outages: the admin fault "region X is down" and how each stand-in answers during one.

An outage names a region and what in it is unreachable:

- ``arm``: ARM requests for resources located there (API Management services, and the diagnostic
  settings on them) answer as ARM does when a resource provider does not answer in time:
  **504 ``GatewayTimeout``** "The gateway did not receive a response from '{namespace}' within the
  specified time period." with ``x-ms-failure-cause: service``. Sources: the wording as ARM sends it
  for any provider (Azure/azure-cli #31815 for 'Microsoft.App', microsoft/azure-pipelines-tasks #12925
  for 'Microsoft.Storage'); the headers from a recorded 504 (arminreiter/AzureBillingApi #4:
  ``x-ms-failure-cause: service``, ``Connection: close``). Global resources (Front Door profiles,
  Traffic Manager profiles, DNS zones) are not in a region and stay reachable, as in Azure.
- ``gateway``: the API gateways of the API Management instances there do not answer (the proxy
  refuses to open a tunnel to them: the client sees a connection failure, not an HTTP answer).
- ``keyVault``: the vaults located there do not answer (same), and API Management cannot read their
  certificates either.
- ``storage``: API Management cannot reach storage accounts located there (its backups and restores
  fail on poll with "could not be reached").

``arm`` and ``gateway`` default to on, ``keyVault`` and ``storage`` to off ("can be made unreachable
too"). Lists (``GET .../service``) keep answering: the emulator does not model ARM's per-region fan-out.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from emulator.apim.errors import ArmError
from emulator.apim.resources import REGION_DISPLAY_NAMES, normalize_location
from emulator.apim.state import Store, iso

STATE_KEY = "regionOutages"
PARTS = ("arm", "gateway", "keyVault", "storage")


@dataclass(frozen=True)
class RegionOutage:
    region: str  # normalised: "westeurope"
    arm: bool = True
    gateway: bool = True
    keyVault: bool = False
    storage: bool = False
    since: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Regions:
    """Outages kept in the emulator state (they survive a restart, and ``reset`` clears them)."""

    def __init__(self, store: Store, lock: threading.RLock) -> None:
        self._store = store
        self._lock = lock

    def outages(self) -> list[RegionOutage]:
        return [RegionOutage(**raw) for raw in (self._store.get(STATE_KEY) or {}).values()]

    def set_down(self, region: str, now: float, **parts: bool) -> RegionOutage:
        name = normalize_location(region)
        if not name or name not in REGION_DISPLAY_NAMES:
            raise ValueError(f"unknown region '{region}' (known: {', '.join(sorted(REGION_DISPLAY_NAMES))})")
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown outage parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
        for key, value in parts.items():
            if not isinstance(value, bool):
                raise ValueError(f"'{key}' must be true or false")
        outage = RegionOutage(region=name, since=iso(now), **parts)
        with self._lock:
            current = self._store.get(STATE_KEY) or {}
            current[name] = outage.to_json()
            self._store.put(STATE_KEY, current)
        return outage

    def restore(self, region: str | None = None) -> None:
        """End the outage of ``region`` (every outage when None)."""
        with self._lock:
            current = self._store.get(STATE_KEY) or {}
            if region is None:
                current = {}
            else:
                current.pop(normalize_location(region), None)
            self._store.put(STATE_KEY, current)

    def is_down(self, location: str | None, part: str) -> bool:
        if not location:
            return False
        raw = (self._store.get(STATE_KEY) or {}).get(normalize_location(location))
        return bool(raw and raw.get(part))


def provider_unavailable(namespace: str) -> ArmError:
    """ARM's answer when a resource provider's region does not answer (see the module docstring)."""
    return ArmError(
        504,
        "GatewayTimeout",
        f"The gateway did not receive a response from '{namespace}' within the specified time period.",
        headers={"x-ms-failure-cause": "service"},
    )
