"""The kinds of configuration item a snapshot holds, their item IDs, and the order a restore applies them in.

An **item ID** names one piece of an instance's configuration the way an operator types it:
``apis/echo-api``, ``apis/echo-api/operations/get/policy``, ``products/starter/apis/echo-api``,
``named-values/backend-url``, ``policy`` (the service-level policy). It mirrors the ARM path below
``.../service/{name}/`` (spec: ../shared/apim-spec/apim*.json, api-version 2024-05-01) with
kebab-case collection names, so an item ID and its ARM path translate one to one.

:data:`KINDS` is ordered as a restore must apply creates and updates: what others refer to first
(certificates, named values, backends, loggers, tags, groups, version sets, schemas, fragments),
then APIs and their parts, then products and the links between them, policies last (a policy may
name any of the above: ``{{named value}}``, ``backend-id``, ``fragment-id``). Deletes run in the
reverse order. Nothing here touches Azure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "KINDS",
    "ItemId",
    "ItemKind",
    "Tier",
    "kind_named",
    "parse_item_id",
]

# APIM entity names: 1-256 characters, none of these (the spec's pattern for most ids is
# "^[^*#&+:<>?]+$"); '/' separates the parts of an item ID, so it can't be in a name either.
_NAME_RE = re.compile(r"^[^*#&+:<>?/\\\x00-\x1f]{1,256}$")
MAX_ITEM_ID = 1024


class Tier(StrEnum):
    """APIM pricing tiers (``sku.name``)."""

    CONSUMPTION = "Consumption"
    DEVELOPER = "Developer"
    BASIC = "Basic"
    STANDARD = "Standard"
    PREMIUM = "Premium"
    ISOLATED = "Isolated"
    BASIC_V2 = "BasicV2"
    STANDARD_V2 = "StandardV2"
    PREMIUM_V2 = "PremiumV2"


# The developer portal and what comes with it (users, groups, issues, ...) is not in the
# Consumption tier: https://learn.microsoft.com/azure/api-management/api-management-features
# ("Developer portal": Consumption ❌; footnote 2 "Including related functionality such as users,
# groups, issues, applications, and email templates and notifications").
_NO_PORTAL = frozenset({Tier.CONSUMPTION})


@dataclass(frozen=True)
class ItemKind:
    """One kind of configuration item.

    ``template`` is the item ID with ``{}`` for each name (``apis/{}/operations/{}``); ``arm_path``
    is the same below ``.../service/{name}/`` as ARM spells it (``apis/{}/operations/{}``).
    ``singleton`` kinds have a fixed last name (a policy is always ``policy``); ``link`` kinds
    carry no properties of their own (a product's API, an API's tag): they exist or they don't.
    """

    key: str
    template: str
    arm_path: str
    label: str
    parent: str | None = None
    link: bool = False
    missing_in: frozenset[Tier] = frozenset()

    @property
    def depth(self) -> int:
        return self.template.count("{}")

    @property
    def singleton(self) -> bool:
        return not self.template.endswith("{}")

    @property
    def order(self) -> int:
        """Position in :data:`KINDS`: creates and updates run in this order, deletes in the reverse."""
        return _ORDER[self.key]

    def item_id(self, *names: str) -> ItemId:
        if len(names) != self.depth:
            raise ValueError(f"{self.key} takes {self.depth} names, got {len(names)}")
        return ItemId(self, tuple(names))

    def supported_in(self, tier: str | None) -> bool:
        return tier is None or tier not in self.missing_in


KINDS: tuple[ItemKind, ...] = (
    ItemKind("certificates", "certificates/{}", "certificates/{}", "certificate"),
    ItemKind("named-values", "named-values/{}", "namedValues/{}", "named value"),
    ItemKind("backends", "backends/{}", "backends/{}", "backend"),
    ItemKind("loggers", "loggers/{}", "loggers/{}", "logger"),
    ItemKind("tags", "tags/{}", "tags/{}", "tag"),
    ItemKind("groups", "groups/{}", "groups/{}", "group", missing_in=_NO_PORTAL),
    ItemKind("api-version-sets", "api-version-sets/{}", "apiVersionSets/{}", "API version set"),
    ItemKind("schemas", "schemas/{}", "schemas/{}", "global schema"),
    ItemKind("policy-fragments", "policy-fragments/{}", "policyFragments/{}", "policy fragment"),
    ItemKind("diagnostics", "diagnostics/{}", "diagnostics/{}", "diagnostic"),
    ItemKind("apis", "apis/{}", "apis/{}", "API"),
    ItemKind("api-schemas", "apis/{}/schemas/{}", "apis/{}/schemas/{}", "API schema", parent="apis"),
    ItemKind("api-operations", "apis/{}/operations/{}", "apis/{}/operations/{}", "operation", parent="apis"),
    ItemKind("api-tags", "apis/{}/tags/{}", "apis/{}/tags/{}", "API tag", parent="apis", link=True),
    ItemKind("api-operation-tags", "apis/{}/operations/{}/tags/{}", "apis/{}/operations/{}/tags/{}",
             "operation tag", parent="api-operations", link=True),
    ItemKind("api-diagnostics", "apis/{}/diagnostics/{}", "apis/{}/diagnostics/{}", "API diagnostic",
             parent="apis"),
    ItemKind("products", "products/{}", "products/{}", "product"),
    ItemKind("product-apis", "products/{}/apis/{}", "products/{}/apis/{}", "product's API", parent="products",
             link=True),
    ItemKind("product-groups", "products/{}/groups/{}", "products/{}/groups/{}", "product's group",
             parent="products", link=True, missing_in=_NO_PORTAL),
    ItemKind("product-tags", "products/{}/tags/{}", "products/{}/tags/{}", "product tag", parent="products",
             link=True),
    ItemKind("api-policies", "apis/{}/policy", "apis/{}/policies/policy", "API policy", parent="apis"),
    ItemKind("api-operation-policies", "apis/{}/operations/{}/policy", "apis/{}/operations/{}/policies/policy",
             "operation policy", parent="api-operations"),
    ItemKind("product-policies", "products/{}/policy", "products/{}/policies/policy", "product policy",
             parent="products"),
    ItemKind("policy", "policy", "policies/policy", "service policy"),
)

_ORDER = {kind.key: index for index, kind in enumerate(KINDS)}
_BY_KEY = {kind.key: kind for kind in KINDS}


def kind_named(key: str) -> ItemKind:
    """:raises KeyError: for an unknown kind."""
    return _BY_KEY[key]


@dataclass(frozen=True, order=False)
class ItemId:
    """One configuration item: its kind and the names that the kind's template needs."""

    kind: ItemKind
    names: tuple[str, ...]

    def __str__(self) -> str:
        return self.kind.template.format(*self.names)

    @property
    def arm_path(self) -> str:
        """The path below ``.../service/{name}/`` (names are URL-quoted by the caller)."""
        return self.kind.arm_path.format(*self.names)

    @property
    def name(self) -> str:
        """The item's own name (a singleton's is the kind's fixed last segment, ``policy``)."""
        return self.names[-1] if not self.kind.singleton else self.kind.template.rsplit("/", 1)[-1]

    @property
    def parent(self) -> ItemId | None:
        if self.kind.parent is None:
            return None
        parent = _BY_KEY[self.kind.parent]
        return ItemId(parent, self.names[: parent.depth])

    def ancestors(self) -> list[ItemId]:
        out: list[ItemId] = []
        current = self.parent
        while current is not None:
            out.append(current)
            current = current.parent
        return out

    def is_within(self, other: ItemId) -> bool:
        """True if this item is ``other`` or one of its descendants."""
        return self == other or other in self.ancestors()

    def sort_key(self) -> tuple[int, tuple[str, ...]]:
        return (self.kind.order, tuple(n.lower() for n in self.names))


def parse_item_id(text: object) -> ItemId:
    """An item ID typed by an operator or read from a document.

    :raises ValueError: naming what is wrong (unknown kind, bad name, too long), never echoing
        more than a short prefix of hostile input.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("an item ID is a non-empty string such as 'apis/echo-api'")
    if len(text) > MAX_ITEM_ID:
        raise ValueError(f"an item ID has at most {MAX_ITEM_ID} characters")
    parts = text.strip("/").split("/")
    for kind in KINDS:
        template = kind.template.split("/")
        if len(template) != len(parts):
            continue
        names: list[str] = []
        for want, got in zip(template, parts, strict=True):
            if want == "{}":
                names.append(got)
            elif want != got:
                break
        else:
            for name in names:
                if not _NAME_RE.match(name):
                    raise ValueError(f"{kind.label} name {name[:60]!r} is not a valid APIM name "
                                     "(1-256 characters, none of * # & + : < > ? / \\)")
            return ItemId(kind, tuple(names))
    known = ", ".join(sorted({k.template.split("/", 1)[0] for k in KINDS}))
    raise ValueError(f"{text[:80]!r} is not an item ID; it starts with one of: {known} "
                     "(for example apis/echo-api, products/starter, named-values/backend-url)")
