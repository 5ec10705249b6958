"""Which Blob REST operation a request is, the RBAC permission Azure requires for it, and how
immutability treats it.

Permissions follow the "Authorization" section of each operation's page in the Blob service REST
reference (https://learn.microsoft.com/rest/api/storageservices/<operation>#authorization), the action
list of "Actions and attributes for Azure role assignment conditions for Azure Blob Storage"
(azure/storage/blobs/storage-auth-abac-attributes) and, for the blob service operations, the Storage
team's answer in Azure/azure-sdk-for-js#13503. The table in emulator/README.md lists them with sources.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

SERVICE = "Microsoft.Storage/storageAccounts/blobServices"
CONTAINERS = f"{SERVICE}/containers"
BLOBS = f"{CONTAINERS}/blobs"

BLOB_READ = f"{BLOBS}/read"
BLOB_WRITE = f"{BLOBS}/write"
BLOB_ADD = f"{BLOBS}/add/action"
BLOB_DELETE = f"{BLOBS}/delete"
BLOB_DELETE_VERSION = f"{BLOBS}/deleteBlobVersion/action"
BLOB_PERMANENT_DELETE = f"{BLOBS}/permanentDelete/action"
TAGS_READ = f"{BLOBS}/tags/read"
TAGS_WRITE = f"{BLOBS}/tags/write"
FILTER = f"{BLOBS}/filter/action"
IMMUTABLE_SUPER = f"{BLOBS}/immutableStorage/runAsSuperUser/action"
CONTAINER_READ = f"{CONTAINERS}/read"
CONTAINER_WRITE = f"{CONTAINERS}/write"
CONTAINER_DELETE = f"{CONTAINERS}/delete"
SERVICE_READ = f"{SERVICE}/read"
SERVICE_WRITE = f"{SERVICE}/write"
DELEGATION_KEY = f"{SERVICE}/generateUserDelegationKey/action"


class Imm(enum.Enum):
    """How a blob operation meets an immutable blob (Azure's container-level WORM scenarios table)."""

    NONE = "none"  # reads, tags, tier, lease: always allowed
    DELETE = "delete"  # refused while retention is active or a legal hold is set
    WRITE = "write"  # content/metadata/properties changes of an existing blob
    CREATE = "create"  # creates the blob if new (allowed), overwrites it otherwise (a write)
    APPEND = "append"  # Append Block: allowed under allowProtectedAppendWrites


@dataclass(frozen=True)
class Need:
    """One permission check: any of ``actions`` at the scope ``account[/container]``."""

    actions: tuple[str, ...]
    data: bool  # a DataAction (blob data) rather than a control-plane Action
    account: str
    container: str | None


@dataclass
class Operation:
    name: str
    account: str | None
    container: str | None
    blob: str | None
    needs: list[Need] = field(default_factory=list)
    mapped: bool = True  # False: the front knows no documented permission for it (not RBAC-checked)
    imm: Imm = Imm.NONE
    # Put Blob, Put Block List, Copy Blob: blobs/add/action creates but does not overwrite.
    add_creates_only: bool = False
    container_delete: bool = False
    list_blobs: bool = False
    container_properties: bool = False
    blob_read: bool = False  # Get Blob / Get Blob Properties: the front adds immutability headers

    @property
    def actions(self) -> list[str]:
        return [" | ".join(n.actions) for n in self.needs]


def split_path(raw_path: str) -> tuple[str | None, str | None, str | None]:
    """``/account/container/blob/name`` (percent-encoded) → decoded (account, container, blob)."""
    parts = raw_path.lstrip("/").split("/", 2)
    account = unquote(parts[0]) if parts and parts[0] else None
    container = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
    blob = unquote(parts[2]) if len(parts) > 2 and parts[2] else None
    return account, container, blob


def lower_query(raw_query: str) -> dict[str, str]:
    """Query parameters with lower-cased names (first value of each)."""
    return {k.lower(): v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}


def classify(method: str, raw_path: str, raw_query: str, headers: dict[str, str]) -> Operation:
    """``headers`` has lower-cased names."""
    account, container, blob = split_path(raw_path)
    q = lower_query(raw_query)
    comp = q.get("comp", "").lower()
    restype = q.get("restype", "").lower()
    method = method.upper()
    op = Operation("Unknown", account, container, blob, mapped=False)
    if method == "OPTIONS" or account is None:
        op.name = "Preflight" if method == "OPTIONS" else "Unknown"
        return op

    def need(*actions: str, data: bool = True, scope_container: str | None = container) -> Need:
        assert account is not None
        return Need(tuple(actions), data, account, scope_container)

    def named(name: str, *needs: Need, imm: Imm = Imm.NONE) -> Operation:
        return Operation(name, account, container, blob, list(needs), True, imm)

    if restype == "account" and comp == "properties" and method in ("GET", "HEAD"):
        # Get Account Information: blobs/read (least privileged role: Storage Blob Data Reader).
        return named("GetAccountInformation", need(BLOB_READ))

    if container is None:  # account-level
        if comp == "list" and method == "GET":
            return named("ListContainers", need(CONTAINER_READ, data=False))
        if restype == "service" and comp == "properties":
            if method == "GET":
                return named("GetBlobServiceProperties", need(SERVICE_READ, data=False))
            if method == "PUT":
                return named("SetBlobServiceProperties", need(SERVICE_WRITE, data=False))
        if restype == "service" and comp == "stats" and method == "GET":
            return named("GetBlobServiceStats", need(SERVICE_READ, data=False))
        if restype == "service" and comp == "userdelegationkey" and method == "POST":
            return named("GetUserDelegationKey", need(DELEGATION_KEY, data=False))
        if comp == "blobs" and method == "GET":
            return named("FindBlobsByTags", need(FILTER))
        if comp == "batch":
            op.name = "SubmitBatch"
        return op

    if blob is None:  # container-level
        if restype != "container":
            return op
        if comp == "list" and method == "GET":
            listing = named("ListBlobs", need(BLOB_READ))
            listing.list_blobs = True
            return listing
        if comp == "blobs" and method == "GET":
            return named("FindBlobsByTags", need(FILTER))
        if comp == "" and method == "PUT":
            return named("CreateContainer", need(CONTAINER_WRITE, data=False))
        if comp == "" and method in ("GET", "HEAD"):
            props = named("GetContainerProperties", need(CONTAINER_READ, data=False))
            props.container_properties = True
            return props
        if comp == "metadata" and method in ("GET", "HEAD"):
            props = named("GetContainerMetadata", need(CONTAINER_READ, data=False))
            props.container_properties = True
            return props
        if comp == "metadata" and method == "PUT":
            return named("SetContainerMetadata", need(CONTAINER_WRITE, data=False))
        if comp == "" and method == "DELETE":
            deleting = named("DeleteContainer", need(CONTAINER_DELETE, data=False))
            deleting.container_delete = True
            return deleting
        if comp == "undelete" and method == "PUT":
            return named("RestoreContainer", need(CONTAINER_WRITE, data=False))
        # Get/Set Container ACL, Lease Container, Rename Container, batch: no permission known here.
        op.name = {"acl": "ContainerACL", "lease": "LeaseContainer", "rename": "RenameContainer",
                   "batch": "SubmitBatch"}.get(comp, "Unknown")
        return op

    # blob-level
    copy_source = headers.get("x-ms-copy-source")
    if method in ("GET", "HEAD"):
        if comp == "":
            reading = named("GetBlob" if method == "GET" else "GetBlobProperties", need(BLOB_READ))
            reading.blob_read = True
            return reading
        if comp == "metadata":
            return named("GetBlobMetadata", need(BLOB_READ))
        if comp == "blocklist":
            return named("GetBlockList", need(BLOB_READ))
        if comp in ("pagelist", "pagelistdiff"):
            return named("GetPageRanges", need(BLOB_READ))
        if comp == "tags":
            return named("GetBlobTags", need(TAGS_READ))
        return op
    if method == "POST" and comp == "query":
        return named("QueryBlobContents", need(BLOB_READ))
    if method == "DELETE":
        if comp == "immutabilitypolicies":
            return named("DeleteBlobImmutabilityPolicy", need(IMMUTABLE_SUPER))
        if comp != "":
            return op
        if q.get("deletetype", "").lower() == "permanent":
            action = BLOB_PERMANENT_DELETE
        elif "versionid" in q:
            action = BLOB_DELETE_VERSION
        else:
            action = BLOB_DELETE
        return named("DeleteBlob", need(action), imm=Imm.DELETE)
    if method != "PUT":
        return op
    if comp == "":
        if copy_source:
            sync = (headers.get("x-ms-requires-sync") or "").lower() == "true"
            copying = named("CopyBlobFromURL" if sync else "CopyBlob", need(BLOB_WRITE, BLOB_ADD), imm=Imm.CREATE)
            copying.add_creates_only = True
            source = _same_account_source(copy_source, account) if not sync else None
            if source is not None:
                copying.needs.append(Need((BLOB_READ,), True, account, source))
            return copying
        putting = named("PutBlob", need(BLOB_WRITE, BLOB_ADD), imm=Imm.CREATE)
        putting.add_creates_only = True
        return putting
    if comp == "blocklist":
        committing = named("PutBlockList", need(BLOB_WRITE, BLOB_ADD), imm=Imm.CREATE)
        committing.add_creates_only = True
        return committing
    table: dict[str, tuple[str, tuple[str, ...], Imm]] = {
        "block": ("PutBlockFromURL" if copy_source else "PutBlock", (BLOB_WRITE, BLOB_ADD), Imm.NONE),
        "page": ("PutPageFromURL" if copy_source else "PutPage", (BLOB_WRITE,), Imm.WRITE),
        "appendblock": ("AppendBlockFromURL" if copy_source else "AppendBlock", (BLOB_WRITE, BLOB_ADD), Imm.APPEND),
        "metadata": ("SetBlobMetadata", (BLOB_WRITE,), Imm.WRITE),
        "properties": ("SetBlobProperties", (BLOB_WRITE,), Imm.WRITE),
        "snapshot": ("SnapshotBlob", (BLOB_WRITE, BLOB_ADD), Imm.WRITE),
        "incrementalcopy": ("IncrementalCopyBlob", (BLOB_WRITE, BLOB_ADD), Imm.WRITE),
        "lease": ("LeaseBlob", (BLOB_WRITE,), Imm.NONE),
        "tier": ("SetBlobTier", (BLOB_WRITE,), Imm.NONE),
        "expiry": ("SetBlobExpiry", (BLOB_WRITE,), Imm.NONE),
        "undelete": ("UndeleteBlob", (BLOB_WRITE,), Imm.NONE),
        "copy": ("AbortCopyBlob", (BLOB_WRITE,), Imm.NONE),
        "seal": ("SealAppendBlob", (BLOB_WRITE,), Imm.NONE),
        "tags": ("SetBlobTags", (TAGS_WRITE,), Imm.NONE),
        "immutabilitypolicies": ("SetBlobImmutabilityPolicy", (IMMUTABLE_SUPER,), Imm.NONE),
        "legalhold": ("SetBlobLegalHold", (IMMUTABLE_SUPER,), Imm.NONE),
    }
    if comp in table:
        name, actions, imm = table[comp]
        return named(name, need(*actions), imm=imm)
    return op


def _same_account_source(copy_source: str, account: str) -> str | None:
    """The container of a Copy Blob source in the same account without a SAS (authorized as the caller)."""
    try:
        parts = urlsplit(copy_source)
    except ValueError:
        return None
    if "sig" in lower_query(parts.query):
        return None
    src_account, src_container, src_blob = split_path(parts.path)
    if src_account != account or src_container is None or src_blob is None:
        return None
    return src_container
