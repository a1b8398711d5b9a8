"""The three-level taxonomy: stable label ids and the set of valid paths."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from callreason.errors import Problems
from callreason.io import read_json

LEVELS = ("level_1", "level_2", "level_3")


def normalize_label(text: str) -> str:
    """A label as compared everywhere: Unicode NFC, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", text).strip()


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
        """Validate ``{level_1: {level_2: [level_3, ...]}}`` and build the taxonomy.

        Labels are compared after :func:`normalize_label` (Unicode NFC, surrounding whitespace removed).
        Every problem of the file is reported in one ``InputError``.
        """
        problems = Problems(source)
        if not isinstance(nested, dict) or not nested:
            problems.add("expected a non-empty JSON object {level_1: {level_2: [level_3, ...]}}")
            problems.raise_if_any()
        parent: dict[str, dict[str, str]] = {"level_2": {}, "level_3": {}}
        spelled: dict[str, str] = {}  # normalised label -> first spelling seen
        level_1: list[str] = []
        triples = []

        def label(raw: Any, where: str) -> str | None:
            if not isinstance(raw, str) or not normalize_label(raw):
                problems.add(f"{where}: {raw!r} is not a label name (a non-empty string)")
                return None
            name = normalize_label(raw)
            if name in spelled and spelled[name] != raw:
                problems.add(f"{where}: {ascii(raw)} and {ascii(spelled[name])} are the same label once "
                             "Unicode-normalised (NFC) and stripped; keep one spelling")
            spelled.setdefault(name, raw)
            return name

        for raw_l1, children in nested.items():
            l1 = label(raw_l1, "level_1")
            if l1 is None:
                continue
            if l1 in level_1:
                problems.add(f"level_1 {raw_l1!r} appears twice; keep one")
            level_1.append(l1)
            if not isinstance(children, dict) or not children:
                problems.add(f"level_1 {l1!r} must map to a non-empty object of level_2 -> [level_3, ...]")
                continue
            for raw_l2, leaves in children.items():
                l2 = label(raw_l2, f"under {l1!r}")
                if l2 is None:
                    continue
                if l2 in parent["level_2"]:
                    problems.add(f"level_2 {l2!r} appears under both {parent['level_2'][l2]!r} and {l1!r}; "
                                 "each label must have one parent (rename one)")
                    continue
                parent["level_2"][l2] = l1
                if not isinstance(leaves, list) or not leaves:
                    problems.add(f"{l1!r} > {l2!r} must be a non-empty list of level_3 names (strings)")
                    continue
                for raw_l3 in leaves:
                    l3 = label(raw_l3, f"{l1!r} > {l2!r}")
                    if l3 is None:
                        continue
                    if l3 in parent["level_3"]:
                        problems.add(f"level_3 {l3!r} appears under both {parent['level_3'][l3]!r} and {l2!r}; "
                                     "each label must have one parent (rename one)")
                        continue
                    parent["level_3"][l3] = l2
                    triples.append((l1, l2, l3))
        problems.raise_if_any()
        labels = {
            "level_1": sorted(set(level_1)),
            "level_2": sorted(parent["level_2"]),
            "level_3": sorted(parent["level_3"]),
        }
        index = {level: {name: i for i, name in enumerate(labels[level])} for level in LEVELS}
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
