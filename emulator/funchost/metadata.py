"""Function metadata read from the app, the way the worker indexes it: ``app.get_functions()`` once,
then each function's ``get_function_json()``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TRIGGER_TYPES", "Binding", "FunctionSpec", "UnsupportedFunctionError", "read_functions"]

TRIGGER_TYPES = ("timerTrigger", "queueTrigger", "httpTrigger")
# Output bindings the stand-in can honour. Everything else (blob, table, cosmos, durable...) is refused at start.
OUTPUT_TYPES = ("queue", "http")


class UnsupportedFunctionError(ValueError):
    """The app uses a trigger or binding the stand-in does not implement."""


@dataclass(frozen=True)
class Binding:
    name: str
    type: str
    direction: str
    raw: dict[str, Any] = field(repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: Binding
    outputs: tuple[Binding, ...]
    user_function: Callable[..., Any] = field(repr=False)
    is_async: bool
    wants_context: bool
    function_json: dict[str, Any] = field(repr=False)

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def return_binding(self) -> Binding | None:
        return next((b for b in self.outputs if b.name == "$return"), None)


def read_functions(app: Any) -> list[FunctionSpec]:
    """Index the app. ``get_functions()`` may be called only once per app object (a second call raises)."""
    specs = []
    for function in app.get_functions():
        function_json = json.loads(function.get_function_json())
        specs.append(_spec(function.get_function_name(), function_json, function.get_user_function()))
    return specs


def _spec(name: str, function_json: dict[str, Any], user_function: Callable[..., Any]) -> FunctionSpec:
    bindings = [
        Binding(name=b["name"], type=b["type"], direction=str(b.get("direction", "")).upper(), raw=b)
        for b in function_json.get("bindings", [])
    ]
    triggers = [b for b in bindings if b.type.endswith("Trigger")]
    if len(triggers) != 1:
        raise UnsupportedFunctionError(f"function {name} has {len(triggers)} triggers; exactly one is required")
    trigger = triggers[0]
    if trigger.type not in TRIGGER_TYPES:
        raise UnsupportedFunctionError(
            f"function {name}: trigger {trigger.type!r} is not implemented by the stand-in (only {TRIGGER_TYPES})"
        )
    others = [b for b in bindings if b is not trigger]
    for binding in others:
        if binding.direction != "OUT" or binding.type not in OUTPUT_TYPES:
            raise UnsupportedFunctionError(
                f"function {name}: binding {binding.name!r} ({binding.direction} {binding.type}) is not implemented"
                f" by the stand-in (outputs: {OUTPUT_TYPES})"
            )
        if binding.type == "http" and trigger.type != "httpTrigger":
            raise UnsupportedFunctionError(f"function {name}: an http output needs an httpTrigger")
    parameters = inspect.signature(user_function).parameters
    bound = {trigger.name, *(b.name for b in others if b.name != "$return")}
    wants_context = "context" in parameters and "context" not in bound
    for param_name, param in parameters.items():
        if param_name in bound or param_name == "context":
            continue
        if param.default is inspect.Parameter.empty and param.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise UnsupportedFunctionError(f"function {name}: parameter {param_name!r} has no binding")
    missing = bound - set(parameters)
    if missing:
        raise UnsupportedFunctionError(f"function {name}: bindings {sorted(missing)} have no parameter")
    return FunctionSpec(
        name=name,
        trigger=trigger,
        outputs=tuple(others),
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context=wants_context,
        function_json=function_json,
    )
