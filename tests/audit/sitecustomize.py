"""Records every file a Python process opens (audit hook), for the undeclared-file test.

Active only when ``OPEN_AUDIT_LOG`` is set: at exit the process appends one JSON line
``{"argv": [...], "cwd": ..., "rank": RANK or null, "opened": [[path, mode], ...]}`` to that file.
"""

import atexit
import json
import os
import sys

_LOG = os.environ.get("OPEN_AUDIT_LOG")

if _LOG:
    _opened: set[tuple[str, str]] = set()

    def _hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else f"flags={args[2] if len(args) > 2 else ''}"
            _opened.add((os.path.abspath(os.fsdecode(args[0])), mode))

    def _write() -> None:
        record = {"argv": sys.argv, "cwd": os.getcwd(), "rank": os.environ.get("RANK"), "opened": sorted(_opened)}
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    sys.addaudithook(_hook)
    atexit.register(_write)
