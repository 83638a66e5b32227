"""The one error type for everything a user got wrong: shown as a message with its key path, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad user input: one or more (key path, message) problems, shown together, exit code 2.

    It pickles whole (subclasses too), so an error raised in a worker process reaches the parent as
    the same message rather than as a broken pool.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        """The problems, one a line; a key path or message of absurd length (a 100 KB key typed by
        mistake) is shortened, never echoed whole."""
        n = len(self.problems)
        head = f"{_short(str(self.source), 300)}: {n} problem{'s' if n != 1 else ''}"
        lines = [
            f"  {_short(str(path), 200)}: {_short(str(msg), 2000)}" if path else f"  {_short(str(msg), 2000)}"
            for path, msg in self.problems
        ]
        return "\n".join([head, *lines])

    def __reduce__(self):
        return _rebuild, (type(self), self.problems, self.source)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 40]}... ({len(text)} characters in all)"


def _rebuild(cls: type[UserError], problems: list[tuple[str, str]], source: str) -> UserError:
    """A UserError (or subclass, whatever its constructor takes) with these problems, unpickled."""
    error = cls.__new__(cls)
    UserError.__init__(error, problems, source)
    return error


def os_error_message(e: OSError, command: str = "") -> str:
    """What an OSError met by `command` says: the operation (from its cause), the path, the cause.

    E.g. "cannot write results/x/model.pt: No space left on device"; an error without a path names
    the command instead of leaving a blank where the path would be.
    """
    import errno

    if e.filename is not None and getattr(e, "filename2", None) is not None:
        doing, where = "move", f" {e.filename} to {e.filename2}"
    else:
        doing = {
            errno.ENOSPC: "write",
            errno.EFBIG: "write",
            errno.EROFS: "write",
            errno.EDQUOT: "write",
            errno.ENOENT: "find",
            errno.ENOTDIR: "find",
            errno.EACCES: "open",
            errno.EPERM: "open",
            errno.EISDIR: "open as a file",
            errno.ENAMETOOLONG: "use the path",
        }.get(e.errno or 0, "write or read")
        where = f" {e.filename}" if e.filename is not None else ""
    if not where:  # (a socket, a pipe): no path to name
        where = f" (no path given; while running lossbench {command})" if command else ""
    return f"cannot {doing}{where}: {e.strerror or e}"


class DataError(UserError):
    """A data set cannot be built from the given settings: a user error, at key path `key`."""

    def __init__(self, message: str, key: str = "data"):
        super().__init__([(key, message)], "data")
