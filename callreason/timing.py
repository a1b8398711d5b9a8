"""Wall-clock seconds per named phase of a stage (the profile of ``benchmarks/profile_repro.py``)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class PhaseTimer:
    """Seconds spent in each named phase, summed when a phase repeats, in the order phases first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def rounded(self, digits: int = 2) -> dict[str, float]:
        """The phases' seconds rounded (what reports store)."""
        return {name: round(value, digits) for name, value in self.seconds.items()}
