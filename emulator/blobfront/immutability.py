"""Immutability decisions, as Azure documents them.

Sources (read 2026-12):
- Container-level WORM scenarios table: learn.microsoft.com/azure/storage/blobs/immutable-container-level-worm-policies
  (active policy or legal hold: Delete Blob, Put Blob over an existing blob, Set Blob Metadata, Put Page,
  Set Blob Properties, Snapshot Blob, Incremental Copy Blob, Append Block unless allowProtectedAppendWrites
  are refused; expired policy without legal hold: the same except Delete Blob).
- Retention from creation, Set Blob Tier allowed: learn.microsoft.com/azure/storage/blobs/immutable-storage-overview
- Version-level WORM (account default, blob-level policy and legal hold; precedence blob > container > account):
  learn.microsoft.com/azure/storage/blobs/immutable-version-level-worm-policies
- Error codes and messages: learn.microsoft.com/rest/api/storageservices/blob-service-error-codes
"""

from __future__ import annotations

from dataclasses import dataclass

from .ops import Imm
from .state import FrontState

DAY = 86400.0

POLICY = ("BlobImmutableDueToPolicy", "This operation is not permitted as the blob is immutable due to a policy.")
LEGAL_HOLD = ("BlobImmutableDueToLegalHold",
              "This operation is not permitted as the blob is immutable due to one or more legal holds.")
# Data-plane Delete Container on a container with a legal hold / a locked policy. Wording as reported from
# Azure in MicrosoftDocs/feedback#1844 (the codes are in the SDKs' BlobErrorCode enums).
CONTAINER_LEGAL_HOLD = ("ContainerHasLegalHold",
                        "The requested operation is not allowed as the container has one or more legal holds.")
CONTAINER_LOCKED = ("ContainerImmutabilityPolicyLocked",
                    "The requested operation is not allowed as the container has a locked immutability policy.")


@dataclass(frozen=True)
class BlobFacts:
    exists: bool
    created: float | None = None  # epoch seconds (x-ms-creation-time)
    last_modified: float | None = None
    blob_type: str | None = None


@dataclass(frozen=True)
class Protection:
    """The immutability that applies to one blob now."""

    legal_hold: bool
    version_until: float | None  # version-level retention end (blob policy, else account default)
    version_mode: str | None
    container_until: float | None  # container-level retention end (policy exists: active or expired)
    append_allowed: bool


def protection(state: FrontState, account: str, container: str, blob: str, facts: BlobFacts) -> Protection:
    settings = state.container(account, container)
    blob_settings = state.blob(account, container, blob)
    account_policy = state.account(account)
    legal_hold = bool(blob_settings and blob_settings.legal_hold) or bool(settings and settings.legal_hold_tags)
    version_until: float | None = None
    version_mode: str | None = None
    if blob_settings is not None and blob_settings.until is not None:
        version_until, version_mode = blob_settings.until, blob_settings.mode
    elif account_policy is not None and facts.created is not None:
        version_until = facts.created + account_policy.retention_days * DAY
        version_mode = "Locked" if account_policy.locked else "Unlocked"
    container_until: float | None = None
    append_allowed = False
    if settings is not None and settings.policy is not None:
        policy = settings.policy
        append_allowed = policy.allow_protected_append_writes
        # Append blobs under allowProtectedAppendWrites: retention runs from the last append.
        base = (facts.last_modified if append_allowed and facts.blob_type == "AppendBlob" else facts.created)
        if base is not None:
            container_until = base + policy.retention_days * DAY
    return Protection(legal_hold, version_until, version_mode, container_until, append_allowed)


def refusal(state: FrontState, imm: Imm, account: str, container: str, blob: str, *,
            facts: BlobFacts) -> tuple[str, str] | None:
    """(error code, message) when immutability refuses the operation on this existing blob, else None."""
    if imm is Imm.NONE or not facts.exists:
        return None  # creating a new blob is always allowed
    p = protection(state, account, container, blob, facts)
    now = state.now()
    version_active = p.version_until is not None and now < p.version_until
    container_policy = p.container_until is not None
    container_active = container_policy and now < (p.container_until or 0)
    if imm is Imm.DELETE:
        if p.legal_hold:
            return LEGAL_HOLD
        if version_active or container_active:
            return POLICY
        return None
    if p.legal_hold:
        return LEGAL_HOLD
    if version_active:
        return POLICY
    if container_policy:  # an expired container-level policy still forbids overwrites
        if imm is Imm.APPEND and p.append_allowed:
            return None
        return POLICY
    return None


def container_delete_refusal(state: FrontState, account: str, container: str) -> tuple[str, str] | None:
    settings = state.container(account, container)
    if settings is None:
        return None
    if settings.legal_hold_tags:
        return CONTAINER_LEGAL_HOLD
    if settings.policy is not None and settings.policy.locked:
        return CONTAINER_LOCKED
    return None
