"""App settings as the host sees them: ``local.settings.json`` values and ``%Setting%`` binding expressions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["LocalSettings", "UnresolvedSettingError", "load_local_settings", "resolve_expression"]

_PERCENT = re.compile(r"%([^%]+)%")


class UnresolvedSettingError(KeyError):
    """A ``%Name%`` binding expression names an app setting that does not exist (the host fails indexing too)."""

    def __str__(self) -> str:
        return str(self.args[0])


class LocalSettings(dict[str, str]):
    """The ``Values`` of a local.settings.json, plus ``Host.LocalHttpPort`` when present."""

    local_http_port: int | None = None


def load_local_settings(path: Path) -> LocalSettings:
    """Read ``Values`` from a local.settings.json. Non-string values are turned into strings."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("IsEncrypted"):
        raise ValueError(f"{path} is encrypted (IsEncrypted: true); the stand-in reads plain values only")
    values = data.get("Values", data)  # a bare {name: value} file is accepted as well
    if not isinstance(values, dict):
        raise ValueError(f"{path}: 'Values' must be an object")
    settings = LocalSettings({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})
    port = (data.get("Host") or {}).get("LocalHttpPort")
    if port is not None:
        settings.local_http_port = int(port)
    return settings


def resolve_expression(text: str, settings: Mapping[str, str], *, what: str) -> str:
    """Replace every ``%Name%`` with the app setting ``Name``, as the host does for binding properties."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise UnresolvedSettingError(f"{what}: '%{name}%' does not resolve to an app setting")
        return settings[name]

    return _PERCENT.sub(substitute, text)


def is_truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")
