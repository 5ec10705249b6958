"""JSON at the edges: the one type for a JSON object as it comes from or goes to storage, HTTP or a log line.

Inside, apim-dr works with typed records and documents; ``to_json`` / ``from_json`` (or the adapter)
turn them into this at the edge and back.
"""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JsonObject"]

JsonObject: TypeAlias = dict[str, Any]
