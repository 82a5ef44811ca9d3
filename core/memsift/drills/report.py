"""What a drill reports: how many attempts it made, what failed, and what was lost."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DrillReport:
    """The outcome of one drill.

    ``attempts``: the kills, cases or operations tried. ``kinds``: the failures counted by
    the invariant they broke; ``problems``: one line per failure (the first
    :data:`KEEP_PROBLEMS`). ``lost``: the
    acknowledged writes that were not there afterwards (a subset of the failures' cause).
    ``notes``: figures worth printing (e.g. how many kills landed inside a compaction).
    """

    name: str
    attempts: int = 0
    lost: int = 0
    #: failures by kind (a short name of the broken invariant)
    kinds: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    def fail(self, problem: str, kind: str = "failure") -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if len(self.problems) < KEEP_PROBLEMS:
            self.problems.append(problem)

    def note(self, key: str, by: int = 1) -> None:
        self.notes[key] = self.notes.get(key, 0) + by

    @property
    def failure_count(self) -> int:
        return sum(self.kinds.values())

    def unexpected(self, known: frozenset[str] = frozenset()) -> dict[str, int]:
        """The failures whose kind is not in ``known`` (documented, pinned defects)."""
        return {k: n for k, n in self.kinds.items() if k not in known}

    @property
    def ok(self) -> bool:
        return self.failure_count == 0 and self.lost == 0


#: How many failure descriptions a report keeps.
KEEP_PROBLEMS = 50
