"""Where recovery points are read from: the backup account, or its copy when the backup account is unreachable.

APIM restores only from an account's primary endpoint, so when the backup account's region is down no
restore can read a backup there until someone fails the account over. For an instance whose backups are
copied (``copy``, with ``APIM_DR_COPY_STORAGE_ACCOUNT``), this is the one rule, used by the restore
preflight, the catalog listing and failover (:meth:`RecoveryPointSources.read`):

1. read the backup account;
2. if that fails because the account **cannot be reached** (no connection, DNS, time-out, a 5xx answer:
   :func:`is_unreachable`), read the copy account instead, and say so (:attr:`SourceChoice.reason`);
3. anything else (a 403 from missing roles, a bad request) is raised as it is: a configuration problem is
   not hidden behind the copy; and if the copy cannot be read either, the error names both accounts.

The account chosen is the one APIM must read too (the restore body names ``storageAccount``), so the
target's identity needs a data role on the copy account (infra grants Storage Blob Data Reader on the copy
containers to every protected, standby and drill instance).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from dr_core.kernel.errors import AzureUnavailableError, DrError

if TYPE_CHECKING:
    from dr_core.catalog.entry import CatalogEntry
    from dr_core.kernel.settings import ProtectedInstance
    from dr_core.ports import BackupStore

__all__ = ["RecoveryPointSources", "SourceChoice", "Sourced", "is_unreachable"]

T = TypeVar("T")

# What dr_core/azure/errors.py makes of "no connection" (ServiceRequestError/ServiceResponseError: connection
# refused, reset, DNS, TLS, time-outs) and of other transport failures; a 5xx answer is an outage too.
_UNREACHABLE_CODES = frozenset({"StorageUnreachable", "StorageError"})
_SERVER_ERROR = re.compile(r"storage answered 5\d\d\b")


def is_unreachable(error: DrError) -> bool:
    """True when ``error`` says the storage account could not be reached (not: refused us, or said no)."""
    if not isinstance(error, AzureUnavailableError):
        return False
    if error.error_code in _UNREACHABLE_CODES:
        return True
    return error.error_code == "StorageRequestFailed" and bool(_SERVER_ERROR.search(error.message))


@dataclass(frozen=True)
class SourceChoice:
    """The account recovery points were read from (the one APIM must read), and why the copy, if it was."""

    account: str
    store: BackupStore
    is_copy: bool = False
    reason: str | None = None

    def note(self) -> str:
        """`` (from the copy in X: why)`` for messages, or nothing when the backup account was read."""
        return f" (from the copy in {self.account}: {self.reason})" if self.is_copy else ""


@dataclass(frozen=True)
class Sourced(Generic[T]):
    value: T
    source: SourceChoice


class RecoveryPointSources:
    """The backup account and, when configured, the copy account: read one, fall back to the other."""

    def __init__(self, *, primary: BackupStore, primary_account: str, copies: BackupStore | None = None,
                 copy_account: str | None = None) -> None:
        self._primary = SourceChoice(primary_account, primary)
        self._copies = copies
        self._copy_account = copy_account

    @property
    def primary(self) -> SourceChoice:
        return self._primary

    def copied(self, instance: ProtectedInstance | None) -> bool:
        """Whether ``instance``'s recovery points have copies to fall back on."""
        return self._copies is not None and self._copy_account is not None and (
            instance is None or instance.posture.copy)

    def read(self, instance: ProtectedInstance | None, read: Callable[[BackupStore], T]) -> Sourced[T]:
        """``read`` the backup account, or, if it is unreachable and ``instance`` is copied, the copy account.

        ``instance`` None (an instance no longer configured) falls back whenever copies exist.

        :raises DrError: the backup account's error when there is no copy to fall back on or the error is not
            an outage; an :class:`AzureUnavailableError` naming both accounts when the copy fails too.
        """
        try:
            return Sourced(read(self._primary.store), self._primary)
        except DrError as e:
            if not is_unreachable(e) or not self.copied(instance):
                raise
            primary_error = e
        assert self._copies is not None and self._copy_account is not None
        reason = (f"the backup account {self._primary.account} is unreachable ({primary_error.message}); APIM "
                  f"reads the copy with the target's identity")
        choice = SourceChoice(self._copy_account, self._copies, is_copy=True, reason=reason)
        try:
            return Sourced(read(self._copies), choice)
        except DrError as e:
            raise AzureUnavailableError(
                f"neither the backup account {self._primary.account} ({primary_error.message}) nor its copy in "
                f"{self._copy_account} ({e.message}) could be read", code=e.error_code,
                remediation=e.remediation or primary_error.remediation) from e

    def catalog(self, instance: ProtectedInstance | None, container: str,
                service_name: str) -> Sourced[list[CatalogEntry]]:
        """The recovery points of ``service_name`` in ``container`` (one tag query), newest first."""
        return self.read(instance, lambda store: store.find(container, service_name))

    def tags(self, instance: ProtectedInstance | None, container: str,
             blob_name: str) -> Sourced[dict[str, str] | None]:
        """One recovery point's index tags (None: no such blob in the account read)."""
        return self.read(instance, lambda store: store.tags(container, blob_name))
