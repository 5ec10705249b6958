"""``apim-dr``: the operator CLI. Works when the Function App (or its region) is down.

It reads the same settings as the Function App (environment variables, or ``--settings``
pointing at a ``local.settings.json``), authenticates with ``DefaultAzureCredential`` (so
``az login`` works) and talks to ARM and storage directly through ``dr_core`` — the same
code the Functions run. With ``--wait`` it follows the job and, if no Function App moves it
on time, moves it itself (every step is conditional, so the two never double up).

Exit codes: 0 done/succeeded/passed, 1 the job failed or timed out (prune: a deletion failed), 2 usage, 3 refused by
preflight, 4 configuration error, 5 not found, 6 Azure unreachable (ARM or storage: no
connection, token failure, 5xx), 130 interrupted. One table in :mod:`dr_core.kernel.errors` maps
errors to them. ``apim-dr status`` without a job ID (the posture table) exits 0 when every
instance is within its RPO target (ok or at-risk), 1 when any is breached, 6 when none is
breached but some instance's catalog could not be read.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from dr_core.kernel.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED, DrError, exit_code
from dr_core.kernel.settings import SettingsError

from .output import Output
from .parser import build_parser

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _load_settings_file(path: str) -> None:
    values = json.loads(Path(path).read_text(encoding="utf-8")).get("Values", {})
    for key, value in values.items():
        os.environ.setdefault(str(key), str(value))


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(stdout or sys.stdout, as_json=args.json)
    if args.settings:
        try:
            _load_settings_file(args.settings)
        except (OSError, ValueError) as e:
            out.line(f"error: cannot read {args.settings}: {e}")
            out.result({"error": {"code": "SettingsFileUnreadable", "message": str(e)}})
            return EXIT_CONFIG
    try:
        from dr_core.context import get_context

        return int(args.run(get_context(), args, out))
    except SettingsError as e:
        out.line(str(e))
        out.result({"error": {"code": "ConfigurationError", "problems": e.problems}})
        return EXIT_CONFIG
    except DrError as e:
        out.line(f"error: {e.message}")
        if e.remediation:
            out.line(f"  what to do: {e.remediation}")
        out.result(e.to_json())
        return exit_code(e)
    except KeyboardInterrupt:
        out.line("interrupted; the job goes on (follow it with `apim-dr status <id> --wait`)")
        return EXIT_INTERRUPTED
    except Exception as e:
        # A defect: say so in one line (no traceback on an operator's terminal during an incident).
        logger.debug("unexpected error", exc_info=True)
        message = " ".join(str(e).split())[:300]
        out.line(f"error: unexpected {type(e).__name__}: {message} (a defect in apim-dr; please report it)")
        out.result({"error": {"code": "InternalError", "message": f"{type(e).__name__}: {message}"}})
        return EXIT_FAILED
