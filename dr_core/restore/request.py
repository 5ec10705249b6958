"""A restore request: what ``POST /api/restores`` and ``apim-dr restore`` ask for, validated field by field."""

from __future__ import annotations

from dataclasses import dataclass

from dr_core.catalog.naming import parse_backup_blob_name
from dr_core.kernel.errors import InvalidRequestError
from dr_core.kernel.wire import JsonObject

__all__ = ["RestoreRequest", "parse_restore_request"]


@dataclass(frozen=True)
class RestoreRequest:
    target: str
    source: str | None = None
    backup: str = "latest"
    dry_run: bool = False
    confirm: str | None = None


_REQUEST_FIELDS = {"target", "source", "backup", "dryRun", "confirm"}


def parse_restore_request(data: JsonObject) -> RestoreRequest:
    """Validate the JSON body of ``POST /api/restores``; every bad field is named at once."""
    bad: dict[str, str] = {}
    for key in sorted(set(data) - _REQUEST_FIELDS):
        bad[key[:40]] = "unknown field; allowed: " + ", ".join(sorted(_REQUEST_FIELDS))
    target = _text(data, "target", bad, required=True)
    source = _text(data, "source", bad)
    backup = _text(data, "backup", bad) or "latest"
    confirm = _text(data, "confirm", bad, limit=100)
    dry_run = data.get("dryRun", False)
    if not isinstance(dry_run, bool):
        bad["dryRun"] = "must be true or false"
    if backup != "latest" and "backup" not in bad:
        try:
            parse_backup_blob_name(backup)
        except ValueError as e:
            bad["backup"] = f"must be \"latest\" or a backup blob name ({e})"
    if bad:
        raise InvalidRequestError("invalid restore request: " + "; ".join(f"{k}: {v}" for k, v in bad.items()),
                                  fields=bad)
    assert target is not None
    return RestoreRequest(target=target, source=source, backup=backup, dry_run=bool(dry_run), confirm=confirm)


def _text(data: JsonObject, name: str, bad: dict[str, str], *, required: bool = False,
          limit: int = 400) -> str | None:
    """The field ``name`` as stripped text, or None; what is wrong with it goes into ``bad``."""
    value = data.get(name)
    if value is None:
        if required:
            bad[name] = "required"
        return None
    if not isinstance(value, str) or not value.strip():
        bad[name] = "must be a non-empty string"
        return None
    if len(value) > limit:
        bad[name] = f"at most {limit} characters"
        return None
    return value.strip()
