"""One stored configuration entity (an API, an operation's policy, a product-API link ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Entity:
    """A row of the ``entities`` table.

    ``path`` is the canonical key below the service: collection segments and names, lower case
    (``apis/echo-api/operations/get-item``); ``rpath`` is the same with ARM's segment spelling and the
    names as created (``apis/Echo-Api/operations/Get-Item``), for ids. A non-current API revision lives
    at ``apis/{api};rev={n}`` and is ``hidden`` from the API list; the current one at ``apis/{api}``.
    ``akey`` is an indexed alternate key per kind (an API's path, a link's target, a named value's
    display name ...), so reference and uniqueness checks are queries, not scans.
    """

    path: str
    kind: str
    rpath: str
    name: str
    props: dict[str, Any] = field(default_factory=dict)
    etag: int = 0
    seq: int = 0
    hidden: bool = False
    akey: str | None = None

    @property
    def parent(self) -> str:
        """The parent entity's path ('' for the service), two segments up."""
        parts = self.path.split("/")
        return "/".join(parts[:-2])

    def copy(self) -> Entity:
        import copy

        return Entity(self.path, self.kind, self.rpath, self.name, copy.deepcopy(self.props), self.etag, self.seq,
                      self.hidden, self.akey)
