"""What the CLI prints: live progress on a terminal, plain lines when piped, nothing but the result with --json."""

from __future__ import annotations

import json
from typing import IO, Any

__all__ = ["Output"]


class Output:
    """Live progress on a terminal, plain lines when piped, nothing but the result with --json."""

    def __init__(self, stream: IO[str], *, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.tty = stream.isatty() and not as_json
        self._last_plain = ""
        self._live = False

    def progress(self, text: str) -> None:
        if self.as_json:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._live = True
        elif text != self._last_plain:
            self.stream.write(text + "\n")
            self._last_plain = text
        self.stream.flush()

    def line(self, text: str) -> None:
        if self.as_json:
            return
        if self._live:
            self.stream.write("\n")
            self._live = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def result(self, data: Any) -> None:
        if self.as_json:
            self.stream.write(json.dumps(data, indent=2, default=str) + "\n")
            self.stream.flush()
