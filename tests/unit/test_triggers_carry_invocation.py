"""Every function of the app runs inside its invocation, so the threads it starts log as part of it.

The Python worker keeps the invocation ID on the function's own thread; the host drops records of a thread
without it (issue 18, "Logs from pool threads never reach Azure"). triggers/invocation.py carries it into every
pool dr_core starts; this test makes sure no function, present or added later, skips it.
"""

from __future__ import annotations

import inspect

import pytest


def _functions() -> list[tuple[str, object]]:
    import function_app

    return [(f.get_function_name(), f.get_user_function()) for f in function_app.app.get_functions()]


@pytest.mark.parametrize(("name", "fn"), _functions())
def test_each_function_takes_its_context_and_runs_inside_its_invocation(name: str, fn: object) -> None:
    assert callable(fn)
    parameters = inspect.signature(fn).parameters
    assert "context" in parameters, f"{name} must take `context: func.Context`"
    source = inspect.getsource(fn)
    assert "with invocation(context):" in source or ("respond(" in source and ", context)" in source), (
        f"{name} must run its dr_core call inside `with invocation(context):` (or pass context to respond)")
