"""The shape of dr_core: use cases load no Azure SDK, and only the wiring knows the adapters.

Each capability package (with all its modules) is imported in a fresh interpreter and must bring in no
``azure.*`` module: the SDKs are loaded by the adapters in ``dr_core/azure`` alone, which only
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
# Every package and module but the adapters; each brings in what it imports, and nothing of Azure.
SDK_FREE = ["dr_core.kernel", "dr_core.ports", "dr_core.records", "dr_core.usecases", "dr_core.jobs",
            "dr_core.catalog", "dr_core.inventory", "dr_core.backup", "dr_core.restore", "dr_core.posture",
            "dr_core.retention", "dr_core.standby", "dr_core.drills", "dr_core.snapshots", "dr_core.companion",
            "dr_core.copies", "dr_core.api", "dr_core.cli",
            "dr_core.context"]

# One fresh interpreter (the test process has loaded the SDKs long ago) imports each package with all its
# modules in turn, and says which Azure modules each one brought in that were not there before: a package
# that loads an SDK is named, whatever was imported before it. One interpreter, not one per package, keeps
# this test a third of a second: an SDK once loaded stays in sys.modules, so nothing can hide it.
_PROBE = """
import importlib, json, pkgutil, sys
def azure():
    return {n for n in sys.modules if n == "azure" or n.startswith("azure.")}
found = {}
for name in sys.argv[1:]:
    before = azure()
    root = importlib.import_module(name)
    for module in pkgutil.walk_packages(getattr(root, "__path__", []), root.__name__ + "."):
        importlib.import_module(module.name)
    found[name] = sorted(azure() - before)
print(json.dumps(found))
"""


def test_no_use_case_loads_an_azure_sdk() -> None:
    run = subprocess.run([sys.executable, "-c", _PROBE, *SDK_FREE], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout)
    assert set(loaded) == set(SDK_FREE)
    assert {name: modules for name, modules in loaded.items() if modules} == {}


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
                 "dr_core.drills", "dr_core.inventory", "dr_core.api", "dr_core.cli", "dr_core.context",
                 "dr_core.copies")
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path in (DR_CORE / "azure").rglob("*.py")
                 for name in _imports(path) if name.startswith(use_cases)]
    assert offenders == []
