"""Every function of the app runs inside its invocation, so the threads it starts log as part of it.

The Python worker keeps the invocation ID on the function's own thread; the host drops records of a thread
without it (issue 18, "Logs from pool threads never reach Azure"). triggers/invocation.py carries it into every
pool dr_core starts; this test makes sure no function, present or added later, skips it. It reads the
triggers' source (importing function_app and indexing it here would register the functions twice).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TRIGGERS = Path(__file__).resolve().parents[2] / "triggers"


def _functions() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted(TRIGGERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and isinstance(d.func.value, ast.Name)
                    and d.func.value.id == "bp" for d in node.decorator_list):
                found.append((f"{path.stem}.{node.name}", node))
    return found


def test_the_triggers_are_found() -> None:
    names = {name for name, _ in _functions()}
    assert {"backup.work_on_job", "posture.check_rpo", "retention.prune_backups", "restore.start_restore"} <= names


@pytest.mark.parametrize(("name", "fn"), _functions(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_function_takes_its_context_and_runs_inside_its_invocation(name: str, fn: ast.FunctionDef) -> None:
    assert "context" in [a.arg for a in fn.args.args], f"{name} must take `context: func.Context`"
    source = ast.unparse(fn)
    inside = "with invocation(context):" in source
    passed_on = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "respond"
                    and any(isinstance(a, ast.Name) and a.id == "context" for a in n.args) for n in ast.walk(fn))
    assert inside or passed_on, (
        f"{name} must run its dr_core call inside `with invocation(context):` (or pass context to respond)")
