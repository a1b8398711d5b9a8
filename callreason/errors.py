"""One error type for problems the user can fix, and the wrapper that turns it into a one-line exit."""

from __future__ import annotations

import sys
from typing import Callable


class InputError(Exception):
    """Bad input or configuration. The message names the file, the column/row and the fix."""


def run_stage(stage: str, main: Callable[[], None]) -> None:
    """Run a stage's ``main``; print ``InputError`` as one line on stderr and exit 2, no traceback."""
    try:
        main()
    except InputError as exc:
        print(f"error [{stage}]: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted [{stage}]: no output was replaced; run `dvc repro` again", file=sys.stderr)
        sys.exit(130)
