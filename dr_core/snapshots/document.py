"""The configuration snapshot document: what it holds, its canonical bytes, its content hash.

One document per snapshot, stored gzip-compressed next to native backups. Items are kept in a
deterministic order (:meth:`ItemId.sort_key`) and serialized canonically (sorted keys, no spaces),
so the same configuration always gives the same bytes and the same :attr:`content_hash`: that is
how an unchanged configuration is recognised and no second document is written.

What an item holds is the ARM resource body's ``properties`` as the instance answered it, with
references to other items of the same instance rewritten relative to the service
(``/subscriptions/.../service/prod/apiVersionSets/v1`` becomes ``/apiVersionSets/v1``), so two
instances with the same configuration hold the same document, and a restore into another
instance points the references at the target. Secrets are never held: a secret named value is
listed in :attr:`SnapshotDocument.not_captured` with the reason, and its item keeps only what
is not secret (display name, tags, ``secret: true``), never a value.

Reading a document is defensive (it comes from storage, which operators can write): size, item
count, nesting and every item ID are checked, and a bad one is refused by name
(:class:`SnapshotDocumentError`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

from .kinds import ItemId, parse_item_id

__all__ = [
    "FORMAT",
    "MAX_DOCUMENT_BYTES",
    "MAX_ITEMS",
    "JsonValue",
    "NotCaptured",
    "SnapshotDocument",
    "SnapshotDocumentError",
    "SnapshotItem",
    "canonical_json",
]

FORMAT = "apim-dr/snapshot/1"
# A 1,000-API instance with 10 operations each is ~15,000 items and a few MB of JSON; these bounds
# are far above that and keep a hostile or corrupt blob from exhausting a worker's memory.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024  # uncompressed
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 200_000
MAX_DEPTH = 64

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"


class SnapshotDocumentError(ValueError):
    """A stored document that is not a snapshot apim-dr wrote, or is damaged; the message says where."""


@dataclass(frozen=True)
class SnapshotItem:
    """One item: its ID and its ``properties`` (ARM's body minus ``id``, ``name``, ``type`` and ETag)."""

    item_id: ItemId
    properties: dict[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        return {"id": str(self.item_id), "properties": dict(self.properties)}


@dataclass(frozen=True)
class NotCaptured:
    """An item, or part of one, deliberately left out, and why (``secret, value not captured``)."""

    item_id: str
    reason: str

    def to_json(self) -> dict[str, JsonValue]:
        return {"id": self.item_id, "reason": self.reason}


@dataclass(frozen=True)
class SnapshotDocument:
    """A configuration snapshot of one instance."""

    instance: str
    sku: str | None
    taken_at: datetime
    api_version: str
    items: tuple[SnapshotItem, ...]
    not_captured: tuple[NotCaptured, ...] = ()

    @classmethod
    def build(cls, *, instance: str, sku: str | None, taken_at: datetime, api_version: str,
              items: Iterable[SnapshotItem], not_captured: Iterable[NotCaptured] = ()) -> SnapshotDocument:
        """Items in deterministic order; a duplicate item ID is a reader bug and raises ``ValueError``."""
        ordered = sorted(items, key=lambda i: i.item_id.sort_key())
        seen: set[str] = set()
        for item in ordered:
            key = str(item.item_id).lower()
            if key in seen:
                raise ValueError(f"item {item.item_id} read twice")
            seen.add(key)
        return cls(instance=instance, sku=sku, taken_at=taken_at, api_version=api_version,
                   items=tuple(ordered), not_captured=tuple(sorted(not_captured, key=lambda n: n.item_id)))

    @property
    def content_hash(self) -> str:
        """SHA-256 of the configuration alone (items and what was not captured), not of when or from where."""
        body = {"items": [i.to_json() for i in self.items], "notCaptured": [n.to_json() for n in self.not_captured]}
        return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()

    def item(self, item_id: ItemId | str) -> SnapshotItem | None:
        key = str(item_id).lower()
        return next((i for i in self.items if str(i.item_id).lower() == key), None)

    def by_id(self) -> dict[str, SnapshotItem]:
        """Items keyed by lower-cased item ID (APIM names are case-insensitive)."""
        return {str(i.item_id).lower(): i for i in self.items}

    def counts(self) -> dict[str, int]:
        """How many items of each kind, for the catalog and the job's summary."""
        out: dict[str, int] = {}
        for item in self.items:
            out[item.item_id.kind.key] = out.get(item.item_id.kind.key, 0) + 1
        return out

    # -- bytes ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, JsonValue]:
        return {
            "format": FORMAT,
            "instance": self.instance,
            "sku": self.sku,
            "takenAt": _iso(self.taken_at),
            "apiVersion": self.api_version,
            "contentHash": self.content_hash,
            "counts": dict(sorted(self.counts().items())),
            "items": [i.to_json() for i in self.items],
            "notCaptured": [n.to_json() for n in self.not_captured],
        }

    def to_bytes(self) -> bytes:
        """gzip of the canonical JSON; ``mtime=0`` so equal documents give equal bytes."""
        return gzip.compress(canonical_json(self.to_json()), compresslevel=6, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> SnapshotDocument:
        """The document in ``data`` (gzip JSON), decompressed to at most ``max_bytes``.

        :raises SnapshotDocumentError: naming what is wrong with the stored bytes.
        """
        if len(data) > MAX_COMPRESSED_BYTES:
            raise SnapshotDocumentError(f"the document is {len(data)} bytes compressed; at most {MAX_COMPRESSED_BYTES}")
        try:
            decompressor = zlib.decompressobj(wbits=31)  # gzip framing
            raw = decompressor.decompress(data, max_bytes + 1)
        except zlib.error as e:
            raise SnapshotDocumentError(f"the document is not gzip data: {e}") from e
        if len(raw) > max_bytes or decompressor.unconsumed_tail:
            raise SnapshotDocumentError(f"the document is larger than {max_bytes} bytes uncompressed")
        if _depth(raw) > MAX_DEPTH:
            raise SnapshotDocumentError(f"the document is nested deeper than {MAX_DEPTH} levels")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise SnapshotDocumentError(f"the document is not JSON: {str(e)[:120]}") from e
        return cls.from_json(body)

    @classmethod
    def from_json(cls, body: object) -> SnapshotDocument:
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise SnapshotDocumentError(f"not an apim-dr snapshot (format is not {FORMAT!r})")
        instance, sku, api_version = body.get("instance"), body.get("sku"), body.get("apiVersion")
        if not isinstance(instance, str) or not instance:
            raise SnapshotDocumentError("field 'instance' is missing or not a string")
        if sku is not None and not isinstance(sku, str):
            raise SnapshotDocumentError("field 'sku' is not a string")
        if not isinstance(api_version, str):
            raise SnapshotDocumentError("field 'apiVersion' is missing or not a string")
        taken_at = _parse_iso(body.get("takenAt"))
        raw_items = body.get("items")
        if not isinstance(raw_items, list):
            raise SnapshotDocumentError("field 'items' is missing or not a list")
        if len(raw_items) > MAX_ITEMS:
            raise SnapshotDocumentError(f"the document has {len(raw_items)} items; at most {MAX_ITEMS}")
        items = [_item_from_json(index, raw) for index, raw in enumerate(raw_items)]
        raw_missing = body.get("notCaptured", [])
        if not isinstance(raw_missing, list):
            raise SnapshotDocumentError("field 'notCaptured' is not a list")
        missing = [_not_captured_from_json(index, raw) for index, raw in enumerate(raw_missing)]
        try:
            document = cls.build(instance=instance, sku=sku, taken_at=taken_at, api_version=api_version,
                                 items=items, not_captured=missing)
        except ValueError as e:
            raise SnapshotDocumentError(str(e)) from e
        stored_hash = body.get("contentHash")
        if stored_hash != document.content_hash:
            raise SnapshotDocumentError("the document's content hash does not match its items (damaged or edited)")
        return document


def canonical_json(value: object) -> bytes:
    """Sorted keys, no insignificant spaces, UTF-8: one byte string per JSON value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _item_from_json(index: int, raw: object) -> SnapshotItem:
    if not isinstance(raw, dict):
        raise SnapshotDocumentError(f"items[{index}] is not an object")
    try:
        item_id = parse_item_id(raw.get("id"))
    except ValueError as e:
        raise SnapshotDocumentError(f"items[{index}].id: {e}") from e
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        raise SnapshotDocumentError(f"items[{index}].properties is not an object")
    return SnapshotItem(item_id, properties)


def _not_captured_from_json(index: int, raw: object) -> NotCaptured:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("reason"), str):
        raise SnapshotDocumentError(f"notCaptured[{index}] must be an object with string 'id' and 'reason'")
    return NotCaptured(raw["id"][:1024], raw["reason"][:500])


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse_iso(value: object) -> datetime:
    if not isinstance(value, str):
        raise SnapshotDocumentError("field 'takenAt' is missing or not a string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise SnapshotDocumentError("field 'takenAt' is not an ISO 8601 time") from e
    if moment.tzinfo is None:
        raise SnapshotDocumentError("field 'takenAt' has no time zone")
    return moment


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting, brackets in strings not counted; no recursion, so hostile input is flat work."""
    depth = deepest = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
