"""Two steps a queue function runs in order; ``--crash-at after:sample_steps:step_one`` kills the host between them."""

import json
import os
import time


def record(function: str, **fields: object) -> None:
    """Append one JSON line to SAMPLE_RECORD_FILE (small O_APPEND writes do not interleave)."""
    line = json.dumps({"function": function, "time": time.time(), "pid": os.getpid(), **fields})
    with open(os.environ["SAMPLE_RECORD_FILE"], "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def step_one(body: str) -> None:
    record("step_one", body=body)


def step_two(body: str) -> None:
    record("step_two", body=body)
