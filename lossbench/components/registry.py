"""Named components: a registry maps a snake_case name to one function.

A loss, activation, init, optimizer, schedule or data set is one decorated function in its module;
the CLI listing, config validation and the generated tests find it here. The function's signature
is the schema: its keyword-only arguments are what a config may set, with their defaults, and each
one's annotation says what is valid, right beside it: `delta: Annotated[float, Gt(0)]` (bounds from
`annotated_types`), `nonlinearity: Literal["relu", "tanh"]`. Validation reads these and `lossbench
list` shows them; nothing is keyed by a bare parameter name, so two functions never share a rule by
accident.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import operator
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

import annotated_types as at


@dataclass
class Entry:
    """One registered component."""

    name: str
    fn: Callable
    summary: str
    meta: dict = field(default_factory=dict)

    def params(self) -> dict[str, inspect.Parameter]:
        """The keyword arguments a config may set: the function's keyword-only parameters."""
        sig = inspect.signature(self.fn)
        return {n: p for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def defaults(self) -> dict[str, Any]:
        return {n: p.default for n, p in self.params().items() if p.default is not p.empty}

    def hints(self) -> dict[str, Any]:
        """Each keyword argument's annotation as an object (constraints included); Any if none."""
        try:
            found = _type_hints(self.fn)
        except (NameError, TypeError) as e:  # a name the annotation uses is not importable
            raise TypeError(f"{self.name}: cannot read the annotations of its signature: {e}") from None
        return {n: found.get(n, Any) for n in self.params()}

    def keywords_text(self) -> str:
        """'delta=1.0 [> 0], half=False': each keyword's default and what is valid (for `list`)."""
        hints = self.hints()
        return ", ".join(f"{k}={v}{_valid_text(hints[k])}" for k, v in self.defaults().items())

    def __repr__(self) -> str:
        return f"Entry({self.name!r}: {self.summary})"


@functools.cache
def _type_hints(fn: Callable) -> dict[str, Any]:
    return typing.get_type_hints(fn, include_extras=True)  # evaluated once: validation asks per key


class Registry:
    """A dict of `Entry` by name, filled by the `register` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Entry] = {}
        self.aliases: dict[str, str] = {}  # other names people use -> the registered name

    def alias(self, **names: str) -> None:
        """Record other common names for registered entries, e.g. `alias(swish="silu")`.

        An alias is not accepted in a config (one thing, one name, so run ids stay stable); it is
        what "did you mean" offers when someone writes it.
        """
        for other, name in names.items():
            if name not in self.entries or other in self.entries:
                raise ValueError(
                    f"alias {other!r} -> {name!r}: needs a registered {self.kind} and a new name"
                )
            self.aliases[other] = name

    def others(self, name: str) -> list[str]:
        """The other names recorded for `name`."""
        return [a for a, n in self.aliases.items() if n == name]

    def hint(self, word: object) -> str:
        """' (did you mean 'x'?)' for a misspelt name or another name of a registered one, else ''."""
        if not isinstance(word, str):
            return ""
        normal = word.strip().lower().replace("-", "_").replace(" ", "_")
        target = self.aliases.get(normal) or (normal if normal in self.entries else None)
        if target and target != word:
            why = "" if normal == target else f" {word!r} is another name for it"
            return f" (did you mean {target!r}?{why})"
        return did_you_mean(word, self.names())

    def register(self, fn: Callable | None = None, **meta: Any) -> Callable:
        """Register `fn` under its own name; `meta` holds facts validation needs (tasks, ...)."""

        def add(f: Callable) -> Callable:
            doc = inspect.getdoc(f) or ""
            summary = doc.strip().splitlines()[0] if doc.strip() else f.__name__
            name = f.__name__.rstrip("_")
            if name in self.entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self.entries[name] = Entry(name, f, summary, meta)
            return f

        return add(fn) if fn is not None else add

    def __getitem__(self, name: str) -> Entry:
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.entries)})"


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ----- reading annotations: the type, the choices and the bounds ----------------------------------


@dataclass(frozen=True)
class Spec:
    """What an annotation allows: a base type, whether null is allowed, and its constraints."""

    base: Any
    optional: bool = False
    constraints: tuple = ()

    @property
    def choices(self) -> tuple | None:
        """The allowed values of a `Literal[...]`, else None."""
        return typing.get_args(self.base) if typing.get_origin(self.base) is Literal else None

    @property
    def item(self) -> Spec | None:
        """The spec of a list's items (`list[Annotated[float, Ge(0)]]`), else None."""
        if typing.get_origin(self.base) in (list, tuple, Sequence) and typing.get_args(self.base):
            return spec(typing.get_args(self.base)[0])
        return None


def spec(annotation: Any) -> Spec:
    """Unwrap `Annotated[...]` and `X | None` into a `Spec` (in any nesting order)."""
    optional, constraints = False, list[Any]()
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *meta = typing.get_args(annotation)
            constraints.extend(_flatten(meta))
        elif typing.get_origin(annotation) in (Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(rest) < len(typing.get_args(annotation))
            if len(rest) != 1:  # a choice of types: not checked here, the function decides
                return Spec(Any, optional, tuple(constraints))
            annotation = rest[0]
        else:
            return Spec(annotation, optional, tuple(constraints))


def _flatten(meta: Iterable) -> Iterator:
    for m in meta:
        if isinstance(m, at.GroupedMetadata):  # Interval and Len are groups of single bounds
            yield from _flatten(m)
        else:
            yield m


_BOUNDS = {  # each numeric bound: its field, its test and its sign
    at.Gt: ("gt", operator.gt, ">"),
    at.Ge: ("ge", operator.ge, ">="),
    at.Lt: ("lt", operator.lt, "<"),
    at.Le: ("le", operator.le, "<="),
}


def out_of_bounds(value: float, constraints: Iterable) -> bool:
    """True when `value` breaks one of the numeric bounds (Gt, Ge, Lt, Le)."""
    bounds = [(_BOUNDS[type(c)], c) for c in constraints if type(c) in _BOUNDS]
    return any(not test(value, getattr(c, field)) for (field, test, _), c in bounds)


def bounds_text(constraints: Iterable) -> str:
    """The numeric bounds as words: '>= 0 and < 1' ('' when there are none)."""
    bounds = [(_BOUNDS[type(c)], c) for c in constraints if type(c) in _BOUNDS]
    return " and ".join(f"{sign} {getattr(c, field)}" for (field, _, sign), c in bounds)


def length(constraints: Iterable) -> tuple[int | None, int | None]:
    """(min, max) length from MinLen / MaxLen constraints."""
    lo = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), None)
    hi = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
    return lo, hi


def _valid_text(annotation: Any) -> str:
    """' [> 0]', ' [relu|tanh]', ' [2 numbers, each >= 0 and < 1]'; '' when anything of its type goes."""
    s = spec(annotation)
    if s.choices is not None:
        return f" [{'|'.join(str(c) for c in s.choices)}]"
    if s.item is not None:
        lo, hi = length(s.constraints)
        each = bounds_text(s.item.constraints)
        count = f"{lo} numbers" if lo is not None and lo == hi else "numbers"
        return f" [{count}{', each ' + each if each else ''}]" if each or count != "numbers" else ""
    bounds = bounds_text(s.constraints)
    return f" [{bounds}]" if bounds else ""


# ----- a value against its annotation (config validation) ----------------------------------------

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_value(path: str, value: Any, annotation: Any, problems: list[tuple[str, str]]) -> Any:
    """Check `value` against an annotation and the constraints it carries; returns the value to use.
    A problem is appended to `problems` as (path, message): config validation reports them all.

    The annotation is a parameter's or field's own (`Annotated[float, Gt(0)]`, `int | None`,
    `Literal["relu", "tanh"]`, a list of numbers): numbers must be finite and within their
    bounds; an int is accepted where a float is asked for. Other types are left to the function.
    """
    s = spec(annotation)
    if value is None:
        if not s.optional:
            problems.append((path, f"must be {_TYPE_NAMES.get(s.base, 'set')}, got null"))
        return value
    if s.choices is not None:
        if value not in s.choices:
            key, valid = path.rsplit(".", 1)[-1], [str(c) for c in s.choices]
            problems.append(
                (path, f"unknown {key} {value!r}{did_you_mean(value, valid)}; valid: {', '.join(valid)}")
            )
        return value
    if s.item is not None:
        return _check_list(path, value, s, problems)
    if s.base in _TYPE_NAMES:
        ok = is_number(value) if s.base is float else isinstance(value, s.base)
        if s.base is int and isinstance(value, bool):
            ok = False
        if not ok:
            problems.append((path, f"must be {_TYPE_NAMES[s.base]}, got {value!r} ({type(value).__name__})"))
            return value
    if s.base is float:
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        problems.append((path, f"must be a finite number, got {value}"))
    elif is_number(value) and out_of_bounds(value, s.constraints):
        problems.append((path, f"must be {bounds_text(s.constraints)}, got {value}"))
    return value


def _check_list(path: str, value: Any, s: Spec, problems: list[tuple[str, str]]) -> Any:
    """A list of numbers: its length and each item within the item's bounds (Adam's betas)."""
    item = s.item
    lo, hi = length(s.constraints)
    count = {1: "one", 2: "two", 3: "three"}.get(lo, str(lo)) if lo is not None and lo == hi else "a list of"
    bounds = _interval(item.constraints) if item is not None else ""
    wanted = f"{count} numbers{' in ' + bounds if bounds else ''}"
    if not isinstance(value, (list, tuple)) or not all(is_number(v) for v in value):
        problems.append((path, f"must be {wanted}, got {value!r} ({type(value).__name__})"))
        return value
    value = [float(v) for v in value]
    if not all(math.isfinite(v) for v in value):
        problems.append((path, "every number must be finite"))
    elif (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
        problems.append((path, f"must be {wanted}, got {value!r}"))
    elif item is not None and any(out_of_bounds(v, item.constraints) for v in value):
        problems.append((path, f"must be {wanted}, got {value!r}"))
    return value


def _interval(constraints: tuple) -> str:
    """'[0, 1)' for Ge(0) and Lt(1); '' unless both ends are bounded."""
    ends = {type(c).__name__.lower(): c for c in constraints}
    low = f"[{ends['ge'].ge}" if "ge" in ends else f"({ends['gt'].gt}" if "gt" in ends else None
    high = f"{ends['le'].le}]" if "le" in ends else f"{ends['lt'].lt})" if "lt" in ends else None
    return f"{low}, {high}" if low and high else ""
