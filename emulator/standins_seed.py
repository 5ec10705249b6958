"""The stand-in sections of a seed file (checked for shape here; their content when applied).

Kept apart from emulator/standins.py so that emulator/apim/seed.py can use it without an import cycle.
"""

from __future__ import annotations

from typing import Any

SECTIONS = ("keyVaults", "frontDoorProfiles", "trafficManagerProfiles", "dnsZones")


def check_seed(raw: dict[str, Any]) -> dict[str, Any]:
    """``{section: [objects]}`` for the stand-in sections of a raw seed; ``ValueError`` naming a bad one."""
    out: dict[str, Any] = {}
    for key in SECTIONS:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError(f"seed.{key} must be a list of objects")
        out[key] = value
    return out
