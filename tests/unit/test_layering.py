"""The shape of dr_core: use cases load no Azure SDK, and only the wiring knows the adapters.

Each capability package (with all its modules) is imported in a fresh interpreter and must leave no
``azure.*`` module behind: the SDKs are loaded by the adapters in ``dr_core/azure`` alone, which only
the wiring (``dr_core/context.py``) creates, on first use. ``import function_app`` loads
``azure.functions`` and nothing else of Azure, so a cold start never pays for an SDK it does not use.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DR_CORE = ROOT / "dr_core"
# Everything but the adapters and the wiring (and the CLI's entry point, which builds the wiring).
SDK_FREE = ["dr_core.kernel", "dr_core.ports", "dr_core.records", "dr_core.usecases", "dr_core.jobs",
            "dr_core.catalog", "dr_core.inventory", "dr_core.backup", "dr_core.restore", "dr_core.posture",
            "dr_core.retention", "dr_core.standby", "dr_core.drills", "dr_core.api", "dr_core.cli",
            "dr_core.context"]

_PROBE = """
import importlib, json, pkgutil, sys
root = importlib.import_module(sys.argv[1])
for found in pkgutil.walk_packages(getattr(root, "__path__", []), root.__name__ + "."):
    importlib.import_module(found.name)
print(json.dumps(sorted(n for n in sys.modules if n == "azure" or n.startswith("azure."))))
"""


def _azure_modules_after(*args: str) -> list[str]:
    """Run ``_PROBE`` (or ``-c`` code) for each argument in its own fresh interpreter, all at once."""
    runs = {arg: subprocess.Popen([sys.executable, "-c", _PROBE, arg], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for arg in args}
    loaded: list[str] = []
    for arg, run in runs.items():
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, f"importing {arg} failed:\n{err}"
        loaded += [f"{arg}: {name}" for name in json.loads(out)]
    return loaded


def test_no_use_case_loads_an_azure_sdk() -> None:
    assert _azure_modules_after(*SDK_FREE) == []


def test_function_app_loads_azure_functions_and_no_sdk() -> None:
    run = subprocess.run([sys.executable, "-c", "import function_app, json, sys; print(json.dumps(sorted("
                          "n for n in sys.modules if n.startswith('azure'))))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    loaded = json.loads(run.stdout)
    assert "azure.functions" in loaded
    assert [n for n in loaded if n != "azure" and not n.startswith("azure.functions")] == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names


def test_only_the_wiring_knows_the_adapters() -> None:
    allowed = {DR_CORE / "context.py", DR_CORE / "cli" / "main.py", DR_CORE / "store.py"}
    offenders = [f"{path.relative_to(ROOT)}: {name}"
                 for path in DR_CORE.rglob("*.py") if path not in allowed and DR_CORE / "azure" not in path.parents
                 for name in _imports(path)
                 if name.startswith(("dr_core.azure", "dr_core.context")) or name.split(".")[0] == "azure"]
    assert offenders == []


def test_the_adapters_import_no_use_case() -> None:
    use_cases = ("dr_core.backup", "dr_core.restore", "dr_core.posture", "dr_core.retention", "dr_core.standby",
                 "dr_core.drills", "dr_core.inventory", "dr_core.api", "dr_core.cli", "dr_core.context")
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path in (DR_CORE / "azure").rglob("*.py")
                 for name in _imports(path) if name.startswith(use_cases)]
    assert offenders == []
