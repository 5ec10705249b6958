"""Wiring: settings, SDK clients, the job store and the notifier, built once per worker process."""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .arm import ApimOperations
    from .clients import AzureClients
    from .jobs import JobStore
    from .notify import Notifier

__all__ = ["DrContext", "get_context", "reset_context"]

logger = logging.getLogger(__name__)


@dataclass
class DrContext:
    settings: Settings
    clients: AzureClients
    _store: JobStore | None = field(default=None, repr=False)
    _operations: ApimOperations | None = field(default=None, repr=False)
    _notifier: Notifier | None = field(default=None, repr=False)
    _ready_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _storage_ready: bool = field(default=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DrContext:
        from .clients import AzureClients

        return cls(settings=settings, clients=AzureClients(settings))

    @property
    def store(self) -> JobStore:
        if self._store is None:
            from .jobs import JobStore

            self._store = JobStore(self.clients.jobs_table())
        self._ensure_storage()
        return self._store

    @property
    def operations(self) -> ApimOperations:
        if self._operations is None:
            from .arm import ApimOperations

            self._operations = ApimOperations(self.clients)
        return self._operations

    @property
    def notifier(self) -> Notifier:
        if self._notifier is None:
            from .notify import LogNotifier, WebhookNotifier

            url = self.settings.webhook_url
            self._notifier = WebhookNotifier(url.reveal()) if url else LogNotifier()
        return self._notifier

    def _ensure_storage(self) -> None:
        # In Azure, infra/ creates the table and queue; locally they may not exist yet.
        # One check per process, not per invocation.
        if self._storage_ready:
            return
        with self._ready_lock:
            if self._storage_ready:
                return
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                self.clients.jobs_table().create_table()
            with contextlib.suppress(ResourceExistsError):
                self.clients.work_queue().create_queue()
            self._storage_ready = True


_context: DrContext | None = None
_context_lock = threading.Lock()


def get_context() -> DrContext:
    """The process-wide context, built on first use from the environment.

    :raises SettingsError: naming every invalid setting.
    """
    global _context
    with _context_lock:
        if _context is None:
            _context = DrContext.from_settings(load_settings())
        return _context


def reset_context(context: DrContext | None = None) -> None:
    """Replace the process-wide context (tests; a settings reload)."""
    global _context
    with _context_lock:
        _context = context
