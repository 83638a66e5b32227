"""The one error type for everything a user got wrong: shown as a message with its key path, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad user input: one or more (key path, message) problems, shown together, exit code 2."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''}"
        lines = [f"  {path}: {msg}" if path else f"  {msg}" for path, msg in self.problems]
        return "\n".join([head, *lines])
