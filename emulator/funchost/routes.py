"""ASP.NET-style route templates as the Functions host reads ``route``: ``items/{id:int}/{name?}``.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}`` (trailing
segments), defaults ``{name=value}``, catch-all ``{*rest}``, and the constraints ``int``,
``long``, ``bool``, ``guid``, ``alpha``, ``min(n)``, ``max(n)``, ``range(a,b)``,
``length(n)``/``length(a,b)``, ``minlength(n)``, ``maxlength(n)`` and ``regex(...)``. Other
constraints (``datetime``, ``decimal``...) are accepted and not checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["RouteTemplate", "RouteTemplateError"]

_PARAM = re.compile(r"\{([^{}]+(?:\{[^{}]*\}[^{}]*)*)\}")
_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?:true|false)",
    "guid": r"\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?",
    "alpha": r"[a-z]+",
}
# Segment kinds, most specific first; routes are tried in this order segment by segment.
_LITERAL, _CONSTRAINED, _PLAIN, _OPTIONAL, _CATCH_ALL = range(5)


class RouteTemplateError(ValueError):
    pass


@dataclass
class _Param:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    pattern: str = r"[^/]+"
    checks: list[Callable[[str], bool]] = field(default_factory=list)


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    regex: re.Pattern[str]
    params: tuple[_Param, ...]
    rank: tuple[int, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        template = template.strip().strip("/")
        segments = template.split("/") if template else []
        parts: list[str] = []
        params: list[_Param] = []
        rank: list[int] = []
        for index, segment in enumerate(segments):
            if not segment:
                raise RouteTemplateError(f"route {template!r} has an empty segment")
            whole = _PARAM.fullmatch(segment)
            if whole:
                param = _parse_param(whole.group(1))
                group = f"p{len(params)}"
                params.append(param)
                last = index == len(segments) - 1
                if param.catch_all and not last:
                    raise RouteTemplateError(f"route {template!r}: a catch-all parameter must be the last segment")
                body = f"(?P<{group}>{'.*' if param.catch_all else param.pattern})"
                if param.optional or param.catch_all or param.default is not None:
                    # The slash before an optional trailing segment is optional too.
                    parts.append(f"(?:{'/' if parts else ''}{body})?")
                else:
                    parts.append(("/" if parts else "") + body)
                kind = (_CATCH_ALL if param.catch_all else _OPTIONAL if param.optional or param.default is not None
                        else _CONSTRAINED if param.checks or param.pattern != r"[^/]+" else _PLAIN)
                rank.append(kind)
                continue
            # Literal text, possibly mixed with parameters: "file.{ext}".
            pieces, pos, mixed = [], 0, False
            for match in _PARAM.finditer(segment):
                pieces.append(re.escape(segment[pos:match.start()]))
                param = _parse_param(match.group(1))
                if param.optional or param.catch_all:
                    raise RouteTemplateError(f"route {template!r}: {segment!r} mixes text with an optional parameter")
                pieces.append(f"(?P<p{len(params)}>{param.pattern}?)")
                params.append(param)
                pos, mixed = match.end(), True
            pieces.append(re.escape(segment[pos:]))
            if "{" in segment.replace("{{", "") and not mixed:
                raise RouteTemplateError(f"route {template!r}: malformed segment {segment!r}")
            parts.append(("/" if parts else "") + "".join(pieces))
            rank.append(_CONSTRAINED if mixed else _LITERAL)
        names = [p.name.lower() for p in params]
        if len(set(names)) != len(names):
            raise RouteTemplateError(f"route {template!r} repeats a parameter name")
        regex = re.compile("^" + "".join(parts) + "$", re.IGNORECASE)
        return cls(template=template, regex=regex, params=tuple(params), rank=tuple(rank))

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a path relative to the route prefix (no leading slash), or None."""
        found = self.regex.match(path.strip("/"))
        if not found:
            return None
        values: dict[str, str] = {}
        for index, param in enumerate(self.params):
            raw = found.group(f"p{index}")
            if raw is None or raw == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            value = unquote(raw)
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values

    def sort_key(self) -> tuple[tuple[int, ...], int]:
        # More segments first when the leading segments rank the same: "a/b" before "a/{x?}".
        return self.rank, -len(self.rank)


def _parse_param(text: str) -> _Param:
    catch_all = text.startswith("*")
    text = text.lstrip("*")
    default = None
    if "=" in text:
        text, _, default = text.partition("=")
    optional = text.endswith("?")
    text = text.rstrip("?")
    name, *constraints = _split_constraints(text)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
        raise RouteTemplateError(f"route parameter name {name!r} is not valid")
    param = _Param(name=name, optional=optional, catch_all=catch_all, default=default)
    for constraint in constraints:
        _apply_constraint(param, constraint)
    return param


def _split_constraints(text: str) -> list[str]:
    # Split on ':' outside parentheses, since regex(...) may contain colons.
    parts, depth, current = [], 0, ""
    for char in text:
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return parts


def _apply_constraint(param: _Param, constraint: str) -> None:
    name, _, args_text = constraint.partition("(")
    name = name.strip().lower()
    args = [a.strip() for a in args_text.rstrip(")").split(",")] if args_text else []
    if name in _PATTERNS:
        param.pattern = _PATTERNS[name]
    elif name == "regex" and args_text:
        pattern = re.compile(args_text[:-1] if args_text.endswith(")") else args_text, re.IGNORECASE)
        param.checks.append(lambda v: pattern.search(v) is not None)
    elif name in ("min", "max", "range") and args:
        low = int(args[0]) if name in ("min", "range") else None
        high = int(args[-1]) if name in ("max", "range") else None
        param.pattern = _PATTERNS["int"]
        param.checks.append(lambda v: (low is None or int(v) >= low) and (high is None or int(v) <= high))
    elif name in ("length", "minlength", "maxlength") and args:
        low = int(args[0]) if name in ("length", "minlength") else 0
        high = int(args[-1]) if name in ("length", "maxlength") else None
        param.checks.append(lambda v: len(v) >= low and (high is None or len(v) <= high))
    else:
        # datetime, decimal, double, float, required, file... are tolerated and not checked.
        param.checks.append(lambda v: True)
