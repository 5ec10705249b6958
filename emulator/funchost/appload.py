"""The app as loaded into this process: settings in the environment, modules imported, functions indexed.

Every host instance in this process shares one :class:`LoadedApp`, the way instances of one
Function App run the same code with the same app settings. App settings are process-wide
environment variables and the app module is imported under its own name, so instances can share
a process only when they run the same project, module and settings; anything else raises
:class:`HostAlreadyRunningError`. The last instance to leave puts the environment, ``sys.path``
and ``sys.modules`` back; the next one imports the app afresh.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from azure.functions.decorators.function_app import FunctionRegister

from .metadata import FunctionSpec, read_functions

__all__ = ["HostAlreadyRunningError", "LoadedApp"]


class HostAlreadyRunningError(RuntimeError):
    pass


@dataclass(frozen=True)
class _AppKey:
    project_dir: Path
    app_module: str
    settings: tuple[tuple[str, str], ...]


@dataclass
class LoadedApp:
    key: _AppKey
    module: ModuleType | None = None
    specs: list[FunctionSpec] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    users: int = 0
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _saved_module: ModuleType | None = None
    _modules_before: set[str] = field(default_factory=set)
    _path_added: bool = False

    # -- sharing ------------------------------------------------------------------------------------

    @classmethod
    def acquire(cls, project_dir: Path, app_module: str, settings: Mapping[str, str],
                prepare: Callable[[], None] | None = None) -> LoadedApp:
        key = _AppKey(project_dir, app_module, tuple(sorted(settings.items())))
        with _STATE.lock:
            current = _STATE.loaded
            if current is not None:
                if current.key != key:
                    raise HostAlreadyRunningError(
                        "another in-process FunctionsHost runs a different app or different settings; instances"
                        " in one process must share the project, app module and app settings (settings are"
                        " process-wide environment variables)")
                current.users += 1
                return current
            loaded = cls(key=key)
            try:
                loaded._load(settings, prepare)
            except BaseException:
                loaded._unload()
                raise
            loaded.users = 1
            _STATE.loaded = loaded
            return loaded

    def release(self) -> None:
        with _STATE.lock:
            self.users -= 1
            if self.users > 0:
                return
            self._unload()
            if _STATE.loaded is self:
                _STATE.loaded = None

    # -- loading ------------------------------------------------------------------------------------

    def _load(self, settings: Mapping[str, str], prepare: Callable[[], None] | None) -> None:
        for name, value in settings.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        self.env = dict(os.environ)
        self._modules_before = set(sys.modules)
        project = str(self.key.project_dir)
        if project not in sys.path:
            sys.path.insert(0, project)
            self._path_added = True
        if prepare:
            prepare()
        app = self._import_app()
        self.specs = read_functions(app)

    def _import_app(self) -> Any:
        # Always a fresh import: the app object's get_functions() may be called only once, and another
        # module of the same name (e.g. the project's own function_app) may already be loaded.
        name = self.key.app_module
        self._saved_module = sys.modules.pop(name, None)
        importlib.invalidate_caches()
        self.module = importlib.import_module(name)
        apps = [v for v in vars(self.module).values() if isinstance(v, FunctionRegister)]
        if len(apps) != 1:
            raise RuntimeError(f"{name} defines {len(apps)} FunctionApp objects; exactly one is required")
        return apps[0]

    def _unload(self) -> None:
        for name, previous in self._saved_env.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
        self._saved_env = {}
        if self._modules_before:
            # Forget the modules the app brought in from the project, so the next host imports them afresh
            # (module-level state such as cached clients does not leak between hosts).
            project = str(self.key.project_dir)
            for name in set(sys.modules) - self._modules_before:
                module_file = getattr(sys.modules.get(name), "__file__", None) or ""
                if module_file.startswith(project + os.sep) and ".venv" not in module_file:
                    sys.modules.pop(name, None)
            sys.modules.pop(self.key.app_module, None)
            if self._saved_module is not None:
                sys.modules[self.key.app_module] = self._saved_module
            self._modules_before = set()
            self._saved_module = None
        if self._path_added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(self.key.project_dir))
            self._path_added = False


@dataclass
class _ProcessState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: LoadedApp | None = None


_STATE = _ProcessState()
