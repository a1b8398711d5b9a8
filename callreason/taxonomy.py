"""The three-level taxonomy: stable label ids and the set of valid paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from callreason.errors import InputError
from callreason.io import read_json

LEVELS = ("level_1", "level_2", "level_3")


@dataclass(frozen=True)
class Taxonomy:
    """Labels per level and the valid ``(level_1, level_2, level_3)`` paths.

    Label ids are positions in the sorted label list of each level, so they depend on the
    taxonomy only, never on which labels happen to occur in the data.
    """

    labels: dict[str, list[str]]
    paths: np.ndarray  # (n_leaves, 3) int64 ids, one valid path per leaf
    parent: dict[str, dict[str, str]]  # "level_2": {l2: l1}, "level_3": {l3: l2}

    @classmethod
    def from_dict(cls, nested: Any, source: str = "taxonomy.json") -> "Taxonomy":
        """Validate ``{level_1: {level_2: [level_3, ...]}}`` and build the taxonomy."""
        if not isinstance(nested, dict) or not nested:
            raise InputError(f"{source}: expected a non-empty JSON object {{level_1: {{level_2: [level_3, ...]}}}}")
        parent: dict[str, dict[str, str]] = {"level_2": {}, "level_3": {}}
        triples = []
        for l1, children in nested.items():
            if not isinstance(children, dict) or not children:
                raise InputError(f"{source}: level_1 {l1!r} must map to a non-empty object of level_2 -> [level_3, ...]")
            for l2, leaves in children.items():
                if not isinstance(leaves, list) or not leaves or not all(isinstance(x, str) and x.strip() for x in leaves):
                    raise InputError(f"{source}: {l1!r} > {l2!r} must be a non-empty list of level_3 names (strings)")
                if l2 in parent["level_2"]:
                    raise InputError(f"{source}: level_2 {l2!r} appears under both {parent['level_2'][l2]!r} and {l1!r}; "
                                     "each label must have one parent (rename one)")
                parent["level_2"][l2] = l1
                for l3 in leaves:
                    if l3 in parent["level_3"]:
                        raise InputError(f"{source}: level_3 {l3!r} appears under both {parent['level_3'][l3]!r} and "
                                         f"{l2!r}; each label must have one parent (rename one)")
                    parent["level_3"][l3] = l2
                    triples.append((l1, l2, l3))
        labels = {
            "level_1": sorted(nested),
            "level_2": sorted(parent["level_2"]),
            "level_3": sorted(parent["level_3"]),
        }
        index = {level: {label: i for i, label in enumerate(labels[level])} for level in LEVELS}
        paths = np.array([[index[lv][x] for lv, x in zip(LEVELS, t)] for t in triples], dtype=np.int64)
        paths = paths[np.argsort(paths[:, 2])]
        return cls(labels=labels, paths=paths, parent=parent)

    @classmethod
    def load(cls, path: str | Path) -> "Taxonomy":
        return cls.from_dict(read_json(path, "taxonomy"), source=str(path))

    def ids(self, level: str, values: Sequence[str]) -> np.ndarray:
        """Label ids of ``values`` at ``level`` (every value must be in the taxonomy)."""
        index = {label: i for i, label in enumerate(self.labels[level])}
        return np.array([index[v] for v in values], dtype=np.int64)

    def path_of_leaf(self, level_3: str) -> tuple[str, str, str]:
        l2 = self.parent["level_3"][level_3]
        return self.parent["level_2"][l2], l2, level_3

    def is_valid_path(self, l1: str, l2: str, l3: str) -> bool:
        return self.parent["level_3"].get(l3) == l2 and self.parent["level_2"].get(l2) == l1

    def to_dict(self) -> dict[str, dict[str, list[str]]]:
        nested: dict[str, dict[str, list[str]]] = {}
        for l1, l2, l3 in (self.path_of_leaf(x) for x in self.labels["level_3"]):
            nested.setdefault(l1, {}).setdefault(l2, []).append(l3)
        return nested
