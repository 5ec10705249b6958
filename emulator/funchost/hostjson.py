"""The parts of ``host.json`` the stand-in honours: the queue extension options, the singleton lock
options and the HTTP route prefix.

Queue defaults and limits follow Azure/azure-sdk-for-net
sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueuesOptions.cs
(and the extension docs, "host.json settings"); ``newBatchThreshold`` defaults to
``batchSize/2 * processorCount``, where SkuUtility.cs counts 1 processor on the Dynamic SKU and
``Environment.ProcessorCount`` elsewhere (Flex Consumption): the caller passes the instance's count.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .singleton import SingletonOptions

__all__ = ["HostJson", "QueueOptions", "load_host_json", "parse_timespan"]

logger = logging.getLogger(__name__)

# .NET TimeSpan text as host.json uses it: [d.]hh:mm:ss[.fffffff]
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<frac>\d{1,7}))?$")
_MAX_BATCH_SIZE = 32  # the Storage service returns at most 32 messages per Get Messages call
_MIN_POLLING_INTERVAL = 0.1  # QueuePollingIntervals.Minimum


def parse_timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan string such as ``00:00:30`` or ``1.00:00:00.5``."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a TimeSpan like 'hh:mm:ss' or 'd.hh:mm:ss.fff'")
    seconds = int(match["days"] or 0) * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + int(match["s"])
    return seconds + (float(f"0.{match['frac']}") if match["frac"] else 0.0)


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` with the extension's defaults."""

    message_encoding: str = "base64"
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    # Not configurable in host.json: the extension starts fast and backs off when queues are idle.
    min_polling_interval: float = _MIN_POLLING_INTERVAL

    @classmethod
    def from_section(cls, section: dict[str, Any], *, processor_count: int = 1) -> QueueOptions:
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json extensions.queues.messageEncoding is {encoding!r}; expected base64 or none")
        batch_size = int(section.get("batchSize", 16))
        if not 1 <= batch_size <= _MAX_BATCH_SIZE:
            raise ValueError(f"host.json extensions.queues.batchSize is {batch_size}; expected 1-{_MAX_BATCH_SIZE}")
        threshold = int(section.get("newBatchThreshold", (batch_size // 2) * max(1, processor_count)))
        if threshold < 0:
            raise ValueError(f"host.json extensions.queues.newBatchThreshold is {threshold}; it must not be negative")
        max_dequeue = int(section.get("maxDequeueCount", 5))
        if max_dequeue < 1:
            raise ValueError("host.json extensions.queues.maxDequeueCount must be at least 1")
        visibility = parse_timespan(str(section.get("visibilityTimeout", "00:00:00")))
        polling = parse_timespan(str(section.get("maxPollingInterval", "00:01:00")))
        if polling < _MIN_POLLING_INTERVAL:
            # QueuesOptions.MaxPollingInterval throws: the host does not start.
            raise ValueError(f"host.json extensions.queues.maxPollingInterval is {polling:g} s; MaxPollingInterval"
                             " must not be less than 00:00:00.1")
        return cls(
            message_encoding=encoding,
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_dequeue_count=max_dequeue,
            visibility_timeout=visibility,
            max_polling_interval=polling,
        )


@dataclass(frozen=True)
class HostJson:
    queues: QueueOptions
    route_prefix: str = "api"
    function_timeout: float | None = None
    default_log_level: str = "Information"
    singleton: SingletonOptions = field(default_factory=SingletonOptions)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, processor_count: int = 1) -> HostJson:
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        timeout = data.get("functionTimeout")
        log_levels = (data.get("logging") or {}).get("logLevel") or {}
        return cls(
            queues=QueueOptions.from_section(extensions.get("queues") or {}, processor_count=processor_count),
            singleton=SingletonOptions.from_section(data.get("singleton") or {}, parse_timespan),
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            function_timeout=parse_timespan(timeout) if isinstance(timeout, str) else None,
            default_log_level=str(log_levels.get("default", "Information")),
        )


def load_host_json(project_dir: Path, queue_overrides: Mapping[str, Any] | None = None, *,
                   processor_count: int = 1) -> HostJson:
    """Read ``host.json``; ``queue_overrides`` (host.json keys such as ``maxPollingInterval``) win over it."""
    path = project_dir / "host.json"
    data: dict[str, Any] = {}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    else:
        logger.warning("no host.json in %s; using the extension defaults", project_dir)
    if queue_overrides:
        extensions = dict(data.get("extensions") or {})
        extensions["queues"] = {**(extensions.get("queues") or {}), **queue_overrides}
        data = {**data, "extensions": extensions}
    return HostJson.from_dict(data, processor_count=processor_count)


# host.json log level names -> Python logging levels.
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}
