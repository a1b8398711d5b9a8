"""One error type for problems the user can fix, and the wrapper that turns it into a one-line exit."""

from __future__ import annotations

import signal
import sys
from typing import Callable


class InputError(Exception):
    """Bad input or configuration. The message names the file, the column/row and the fix."""


def run_stage(stage: str, main: Callable[[], None]) -> None:
    """Run a stage's ``main``; print ``InputError`` as one line on stderr and exit 2, no traceback.

    SIGTERM is turned into an exit that runs cleanup, so half-written outputs are removed.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        main()
    except InputError as exc:
        print(f"error [{stage}]: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"interrupted [{stage}]: no half-written output was left; run `dvc repro` again", file=sys.stderr)
        sys.exit(130)
