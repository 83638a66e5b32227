"""Named components: a registry maps a snake_case name to one function.

A loss, activation, init, optimizer, schedule or data set is one decorated function in its module;
the CLI listing, config validation and the generated tests find it here. The function's signature
is the schema: its keyword-only arguments are what a config may set, with their defaults.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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

    def __repr__(self) -> str:
        return f"Entry({self.name!r}: {self.summary})"


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

    def hint(self, word) -> str:
        """' (did you mean 'x'?)' for a misspelt name or another name of a registered one, else ''."""
        if not isinstance(word, str):
            return ""
        normal = word.strip().lower().replace("-", "_").replace(" ", "_")
        target = self.aliases.get(normal) or (normal if normal in self.entries else None)
        if target and target != word:
            why = "" if normal == target else f" {word!r} is another name for it"
            return f" (did you mean {target!r}?{why})"
        return did_you_mean(word, self.names())

    def register(self, fn: Callable | None = None, **meta):
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

    def __iter__(self):
        return iter(self.entries)

    def names(self) -> list[str]:
        return list(self.entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.entries)})"


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
