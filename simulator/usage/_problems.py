"""What can be wrong with a usage export, as values: where (file, row or JSON path) and what.

Two kinds, decided per problem in `_rows` and listed in docs/usage-import.md:

- `UsageError`: the export cannot be read as one (a missing column, a malformed date, duration,
  amount or currency, two currencies, an empty file).  `callsim import` prints its one line and
  exits 2; nothing is written.
- `UsageWarning`: rows that are read but not fully used (an unknown call type or capability, a
  malformed phone number).  Counted, printed on stderr and listed in the written scenario's
  header, each with its first rows, so none is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def plural(count: int, noun: str) -> str:
    """ "1 row", "2 rows", "1,000 rows"."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class UsageError(Exception):
    """An export that cannot be imported: one line naming the place and the problem."""

    def __init__(self, place: str, problem: str) -> None:
        super().__init__(f"{place}: {problem}" if place else problem)
        self.place = place
        self.problem = problem


@dataclass
class UsageWarning:
    """Rows read but not fully used, all for one reason: how many, and the first few places."""

    problem: str
    count: int = 0
    places: list[str] = field(default_factory=list)

    #: Places kept per warning: enough to find the rows, few enough for one comment line.
    SHOWN = 3

    def line(self) -> str:
        more = f" and {self.count - len(self.places):,} more" if self.count > len(self.places) else ""
        return f"{self.problem}: {plural(self.count, 'row')} ({', '.join(self.places)}{more})"
