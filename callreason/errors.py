"""Problems the user can fix, reported one line each, and the wrapper that turns them into an exit code.

Validation collects every problem of a file (:class:`Problems`) and raises them together, so one run
shows them all. A stage prints each line as ``error [stage]: <file>: <what> ... <fix>`` on stderr and
exits with 2, without a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Callable, NoReturn


class InputError(Exception):
    """Bad input or configuration: one line per problem, each naming the file, the column/row and the fix."""

    def __init__(self, *lines: str):
        self.lines = [line for text in lines for line in str(text).splitlines()] or ["input error"]
        super().__init__("\n".join(self.lines))


def cause(exc: BaseException, limit: int = 120) -> str:
    """``<Type>: <message>`` of a library exception on one line (whitespace collapsed), at most ``limit``
    characters of message: the part in parentheses of an :class:`InputError` line."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message[:limit]}" if message else type(exc).__name__


class Problems:
    """The problems found in one input ``source``; :meth:`raise_if_any` reports them all at once."""

    def __init__(self, source: str):
        self.source = source
        self.lines: list[str] = []

    def add(self, message: str) -> None:
        self.lines.append(f"{self.source}: {message}")

    def __bool__(self) -> bool:
        return bool(self.lines)

    def raise_if_any(self) -> None:
        if self.lines:
            raise InputError(*self.lines)


def run_stage(stage: str, main: Callable[[], None]) -> None:
    """Run a stage's ``main``; print each ``InputError`` line on stderr and exit 2, no traceback.

    SIGTERM is turned into an exit that runs cleanup, so half-written outputs are removed.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        main()
    except InputError as exc:
        for line in exc.lines:
            print(f"error [{stage}]: {line}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted [{stage}]: no half-written output was left; run `dvc repro` again", file=sys.stderr)
        sys.exit(130)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``error [prog]: <message>; see --help``, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error [{self.prog}]: {message}; see --help", file=sys.stderr)
        sys.exit(2)
