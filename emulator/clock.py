"""The app's clock in the local world: real time plus the APIM emulator's clock offset.

The emulator ages backups on its own movable clock (``EmulatorAdmin.advance_clock``). The app
must see the same time, or expiry could only be tested inside the emulator. The demo and the
end-to-end tests hand a :class:`LinkedClock` to ``dr_core.context.reset_context(clock=...)``;
it satisfies ``dr_core.clock.Clock`` by shape, without importing the app.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from .apim.admin import EmulatorAdmin

__all__ = ["LinkedClock"]


class LinkedClock:
    """``now()`` = the real time + the emulator's offset, re-read when older than ``refresh`` s (default: always)."""

    def __init__(self, admin: EmulatorAdmin, *, refresh: float = 0.0) -> None:
        self._admin = admin
        self._refresh = refresh
        self._lock = threading.Lock()
        self._offset = 0.0
        self._read_at = float("-inf")

    def now(self) -> datetime:
        with self._lock:
            if time.monotonic() - self._read_at > self._refresh:
                self._offset = float(self._admin.clock()["offsetSeconds"])
                self._read_at = time.monotonic()
            offset = self._offset
        return datetime.now(UTC) + timedelta(seconds=offset)
