"""The command line: `python -m lossbench COMMAND ...` (also the `lossbench` console script).

Exit codes: 0 success, 1 an internal error (a bug: please report it with the traceback), 2 bad
input (config, command line, paths), 130 interrupted by Ctrl-C. Nothing heavy is imported before a
command runs, so `--help` answers at once. The parser and each flag's checks are in `parser`, the
command handlers, which print what the library returns, in `commands`.
"""

from __future__ import annotations

import sys

from .commands import cmd_reproduce, print_summary
from .parser import parse, parser

__all__ = ["cmd_reproduce", "main", "parse", "parser", "print_summary"]


def _printable_streams() -> None:
    """Let stdout and stderr print any path: a character the terminal's encoding lacks (a cp1252
    console and a folder named 結果) is written escaped instead of failing after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass  # not a text stream of our own (a test's capture): left as it is


def main(argv: list[str] | None = None) -> int:
    _printable_streams()
    args = parse(argv)
    if args.version:
        from .. import __version__

        print(f"lossbench {__version__}")
        return 0
    if not args.command:
        parser().print_help()
        return 2
    from ..errors import UserError

    _sigterm_like_ctrl_c()
    try:
        return args.handler(args) or 0
    except UserError as e:
        print(f"lossbench: error: {e.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nlossbench: interrupted; what was recorded is kept, the run is marked interrupted "
            "and will be redone next time (a finished run being replaced with --force stays as it was)",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # a full disk, a path too long, a read-only folder met while writing figures
        from ..errors import os_error_message

        print(f"lossbench: error: {os_error_message(e, args.command)}", file=sys.stderr)
        return 2


def _sigterm_like_ctrl_c() -> None:
    """SIGTERM (a `kill`, a job scheduler's stop) ends a command as Ctrl-C does: runs are marked
    interrupted, sweep workers are stopped, exit code 130."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a thread): leave it as it is
        pass
