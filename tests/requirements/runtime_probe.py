"""Run inside a venv holding only requirements.txt: does the deployed code find every module it imports?

Standard library only (it runs where nothing else is installed). It imports ``function_app``, every
module of the deployed packages, and every module any of their ``import`` statements names, including
the lazy ones inside functions (the app defers its Azure SDK imports to keep cold start light, so
importing the modules alone would miss them). Imports under ``if TYPE_CHECKING:`` are left out: they
never run. Prints one JSON object: ``{"checked": [...], "failures": [{"module", "where", "error"}]}``.

Usage: ``python -I runtime_probe.py <project root> <package or file>... [--source FILE]...``
``--source`` adds a file whose imports are checked without importing the file itself.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import traceback
from pathlib import Path


def _is_type_checking_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (its ``else`` branch does run)."""
    nodes: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def imported_names(path: Path, module: str | None) -> list[tuple[str, str | None]]:
    """(module, attribute or None) for each import in the file; relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = (module or "").rpartition(".")[0] if path.name != "__init__.py" else (module or "")
    found: list[tuple[str, str | None]] = []
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "__future__":
                continue
            found.extend((target, alias.name) for alias in node.names if alias.name != "*")
    return found


def _module_files(root: Path, target: str) -> list[tuple[Path, str]]:
    path = root / target
    if path.suffix == ".py":
        return [(path, path.stem)]
    return [
        (file, ".".join(file.relative_to(root).with_suffix("").parts).removesuffix(".__init__"))
        for file in sorted(path.rglob("*.py"))
    ]


def _try(module: str, attribute: str | None) -> str | None:
    try:
        imported = importlib.import_module(module)
        if attribute is not None and not hasattr(imported, attribute):
            importlib.import_module(f"{module}.{attribute}")  # a submodule, not an attribute
    except BaseException:  # SystemExit and the like are failures to report, too
        return traceback.format_exc(limit=3).strip().splitlines()[-1]
    return None


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve()
    sys.path.insert(0, str(root))
    targets: list[str] = []
    sources: list[Path] = []
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--source":
            sources.append(Path(next(rest)))
        else:
            targets.append(arg)

    checked: list[str] = []
    failures: list[dict[str, str]] = []
    wanted: list[tuple[str, str | None, str]] = []
    for target in targets:
        for file, module in _module_files(root, target):
            where = str(file.relative_to(root))
            # __main__ runs the CLI when imported; its imports are still checked below.
            if not module.endswith("__main__"):
                wanted.append((module, None, where))
            wanted.extend((name, attr, where) for name, attr in imported_names(file, module))
    for source in sources:
        wanted.extend((name, attr, str(source)) for name, attr in imported_names(source, None))

    seen: set[tuple[str, str | None]] = set()
    for module, attribute, where in wanted:
        if (module, attribute) in seen:
            continue
        seen.add((module, attribute))
        error = _try(module, attribute)
        checked.append(module if attribute is None else f"{module}:{attribute}")
        if error is not None:
            name = module if attribute is None else f"{module}.{attribute}"
            failures.append({"module": name, "where": where, "error": error})
    print(json.dumps({"checked": checked, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
