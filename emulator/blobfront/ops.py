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
    # Put Blob From URL / Put Block From URL: the front performs them itself (Azurite 3.35 has neither), reading
    # the source as the x-ms-copy-source-authorization token (or anonymously) and writing with the account key.
    from_url: bool = False

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


@dataclass(frozen=True)
class _Request:
    """What classifying looks at: the method, the decoded path, the query (lower-cased names), headers."""

    method: str  # upper-case
    account: str
    container: str | None
    blob: str | None
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names

    @property
    def comp(self) -> str:
        return self.query.get("comp", "").lower()

    @property
    def restype(self) -> str:
        return self.query.get("restype", "").lower()

    def need(self, *actions: str, data: bool = True) -> Need:
        """Any of ``actions`` at the request's own scope (its container, or the account)."""
        return Need(tuple(actions), data, self.account, self.container)

    def named(self, name: str, *needs: Need, imm: Imm = Imm.NONE) -> Operation:
        return Operation(name, self.account, self.container, self.blob, list(needs), True, imm)

    def unmapped(self, name: str = "Unknown") -> Operation:
        """An operation without a documented permission: forwarded, not RBAC-checked."""
        return Operation(name, self.account, self.container, self.blob, mapped=False)


def classify(method: str, raw_path: str, raw_query: str, headers: dict[str, str]) -> Operation:
    """The operation a request is. ``headers`` has lower-cased names."""
    account, container, blob = split_path(raw_path)
    method = method.upper()
    if method == "OPTIONS" or account is None:
        return Operation("Preflight" if method == "OPTIONS" else "Unknown", account, container, blob, mapped=False)
    request = _Request(method, account, container, blob, lower_query(raw_query), headers)
    if request.restype == "account" and request.comp == "properties" and method in ("GET", "HEAD"):
        # Get Account Information: blobs/read (least privileged role: Storage Blob Data Reader).
        return request.named("GetAccountInformation", request.need(BLOB_READ))
    if container is None:
        return _account_operation(request)
    if blob is None:
        return _container_operation(request)
    if method in ("GET", "HEAD"):
        return _blob_read(request)
    if method == "POST" and request.comp == "query":
        return request.named("QueryBlobContents", request.need(BLOB_READ))
    if method == "DELETE":
        return _blob_delete(request)
    if method == "PUT":
        return _blob_write(request)
    return request.unmapped()


def _account_operation(r: _Request) -> Operation:
    """Requests on the account itself (``/account?...``): the service and its containers as a list."""
    comp, restype, method = r.comp, r.restype, r.method
    if comp == "list" and method == "GET":
        return r.named("ListContainers", r.need(CONTAINER_READ, data=False))
    if restype == "service" and comp == "properties":
        if method == "GET":
            return r.named("GetBlobServiceProperties", r.need(SERVICE_READ, data=False))
        if method == "PUT":
            return r.named("SetBlobServiceProperties", r.need(SERVICE_WRITE, data=False))
    if restype == "service" and comp == "stats" and method == "GET":
        return r.named("GetBlobServiceStats", r.need(SERVICE_READ, data=False))
    if restype == "service" and comp == "userdelegationkey" and method == "POST":
        return r.named("GetUserDelegationKey", r.need(DELEGATION_KEY, data=False))
    if comp == "blobs" and method == "GET":
        return r.named("FindBlobsByTags", r.need(FILTER))
    return r.unmapped("SubmitBatch" if comp == "batch" else "Unknown")


# Container operations without a permission known here (Get/Set Container ACL, Lease and Rename
# Container, batch): named for the log, forwarded unchecked.
_UNMAPPED_CONTAINER_COMPS = {"acl": "ContainerACL", "lease": "LeaseContainer", "rename": "RenameContainer",
                             "batch": "SubmitBatch"}


def _container_operation(r: _Request) -> Operation:
    """Requests on a container (``/account/container?restype=container...``)."""
    comp, method = r.comp, r.method
    if r.restype != "container":
        return r.unmapped()
    operation: Operation | None = None
    if comp == "list" and method == "GET":
        operation = r.named("ListBlobs", r.need(BLOB_READ))
        operation.list_blobs = True
    elif comp == "blobs" and method == "GET":
        operation = r.named("FindBlobsByTags", r.need(FILTER))
    elif comp == "" and method == "PUT":
        operation = r.named("CreateContainer", r.need(CONTAINER_WRITE, data=False))
    elif comp in ("", "metadata") and method in ("GET", "HEAD"):
        name = "GetContainerProperties" if comp == "" else "GetContainerMetadata"
        operation = r.named(name, r.need(CONTAINER_READ, data=False))
        operation.container_properties = True
    elif comp == "metadata" and method == "PUT":
        operation = r.named("SetContainerMetadata", r.need(CONTAINER_WRITE, data=False))
    elif comp == "" and method == "DELETE":
        operation = r.named("DeleteContainer", r.need(CONTAINER_DELETE, data=False))
        operation.container_delete = True
    elif comp == "undelete" and method == "PUT":
        operation = r.named("RestoreContainer", r.need(CONTAINER_WRITE, data=False))
    return operation or r.unmapped(_UNMAPPED_CONTAINER_COMPS.get(comp, "Unknown"))


# GET/HEAD on a blob with ?comp=: the operation's name; each needs blobs/read but tags (tags/read).
_BLOB_READ_COMPS = {"metadata": "GetBlobMetadata", "blocklist": "GetBlockList", "pagelist": "GetPageRanges",
                    "pagelistdiff": "GetPageRanges"}


def _blob_read(r: _Request) -> Operation:
    if r.comp == "":
        reading = r.named("GetBlob" if r.method == "GET" else "GetBlobProperties", r.need(BLOB_READ))
        reading.blob_read = True
        return reading
    if r.comp == "tags":
        return r.named("GetBlobTags", r.need(TAGS_READ))
    if r.comp in _BLOB_READ_COMPS:
        return r.named(_BLOB_READ_COMPS[r.comp], r.need(BLOB_READ))
    return r.unmapped()


def _blob_delete(r: _Request) -> Operation:
    if r.comp == "immutabilitypolicies":
        return r.named("DeleteBlobImmutabilityPolicy", r.need(IMMUTABLE_SUPER))
    if r.comp != "":
        return r.unmapped()
    if r.query.get("deletetype", "").lower() == "permanent":
        action = BLOB_PERMANENT_DELETE
    elif "versionid" in r.query:
        action = BLOB_DELETE_VERSION
    else:
        action = BLOB_DELETE
    return r.named("DeleteBlob", r.need(action), imm=Imm.DELETE)


@dataclass(frozen=True)
class _BlobWrite:
    """A PUT on a blob with ?comp=: its name (and the name of its *FromURL form), permissions, immutability."""

    name: str
    actions: tuple[str, ...]
    imm: Imm
    from_url: str | None = None  # the operation's name when the request carries x-ms-copy-source


_BLOB_WRITE_COMPS: dict[str, _BlobWrite] = {
    "block": _BlobWrite("PutBlock", (BLOB_WRITE, BLOB_ADD), Imm.NONE, from_url="PutBlockFromURL"),
    "page": _BlobWrite("PutPage", (BLOB_WRITE,), Imm.WRITE, from_url="PutPageFromURL"),
    "appendblock": _BlobWrite("AppendBlock", (BLOB_WRITE, BLOB_ADD), Imm.APPEND, from_url="AppendBlockFromURL"),
    "metadata": _BlobWrite("SetBlobMetadata", (BLOB_WRITE,), Imm.WRITE),
    "properties": _BlobWrite("SetBlobProperties", (BLOB_WRITE,), Imm.WRITE),
    "snapshot": _BlobWrite("SnapshotBlob", (BLOB_WRITE, BLOB_ADD), Imm.WRITE),
    "incrementalcopy": _BlobWrite("IncrementalCopyBlob", (BLOB_WRITE, BLOB_ADD), Imm.WRITE),
    "lease": _BlobWrite("LeaseBlob", (BLOB_WRITE,), Imm.NONE),
    "tier": _BlobWrite("SetBlobTier", (BLOB_WRITE,), Imm.NONE),
    "expiry": _BlobWrite("SetBlobExpiry", (BLOB_WRITE,), Imm.NONE),
    "undelete": _BlobWrite("UndeleteBlob", (BLOB_WRITE,), Imm.NONE),
    "copy": _BlobWrite("AbortCopyBlob", (BLOB_WRITE,), Imm.NONE),
    "seal": _BlobWrite("SealAppendBlob", (BLOB_WRITE,), Imm.NONE),
    "tags": _BlobWrite("SetBlobTags", (TAGS_WRITE,), Imm.NONE),
    "immutabilitypolicies": _BlobWrite("SetBlobImmutabilityPolicy", (IMMUTABLE_SUPER,), Imm.NONE),
    "legalhold": _BlobWrite("SetBlobLegalHold", (IMMUTABLE_SUPER,), Imm.NONE),
}


def _blob_write(r: _Request) -> Operation:
    """PUT on a blob: the creating operations (Put Blob, Copy Blob, Put Block List), then the ?comp= ones."""
    copy_source = r.headers.get("x-ms-copy-source")
    if r.comp == "" and copy_source and r.headers.get("x-ms-blob-type"):
        # Put Blob From URL: Put Blob's headers (x-ms-blob-type) plus a source. Tags in x-ms-tags need Set Blob
        # Tags' permission too ("Authorization" section of put-blob-from-url).
        putting = r.named("PutBlobFromURL", r.need(BLOB_WRITE, BLOB_ADD), imm=Imm.CREATE)
        putting.add_creates_only = True
        putting.from_url = True
        if r.headers.get("x-ms-tags"):
            putting.needs.append(r.need(TAGS_WRITE))
        return putting
    if r.comp == "" and copy_source:
        return _blob_copy(r, copy_source)
    if r.comp in ("", "blocklist"):
        # blobs/add/action creates a blob but does not overwrite one.
        creating = r.named("PutBlob" if r.comp == "" else "PutBlockList", r.need(BLOB_WRITE, BLOB_ADD), imm=Imm.CREATE)
        creating.add_creates_only = True
        return creating
    write = _BLOB_WRITE_COMPS.get(r.comp)
    if write is None:
        return r.unmapped()
    name = write.from_url if copy_source and write.from_url else write.name
    operation = r.named(name, r.need(*write.actions), imm=write.imm)
    operation.from_url = name == "PutBlockFromURL"
    return operation


def _blob_copy(r: _Request, copy_source: str) -> Operation:
    """Copy Blob (asynchronous) or Copy Blob From URL (x-ms-requires-sync: true)."""
    sync = (r.headers.get("x-ms-requires-sync") or "").lower() == "true"
    copying = r.named("CopyBlobFromURL" if sync else "CopyBlob", r.need(BLOB_WRITE, BLOB_ADD), imm=Imm.CREATE)
    copying.add_creates_only = True
    source = _same_account_source(copy_source, r.account) if not sync else None
    if source is not None:
        # The source is read as the caller: blobs/read on its container.
        copying.needs.append(Need((BLOB_READ,), True, r.account, source))
    return copying


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
