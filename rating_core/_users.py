"""An org's users as written: single users and groups, a group kept as one entry.

A `[[orgs.users]]` group of a million users is normal (SPEC §2 allows 1,000,000 a group), and a
million `User` objects cost ~1 s to make and ~150 MB to hold, while everything the rating core
needs from them (their pools, their admission columns) is the same for every member.  So
`Users` is a sequence of `User` that keeps each group as a `UserGroup` and makes a member's
`User` only when one is asked for; the pools and the admission tables read its `kinds`, one
per group.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from ._model import User

__all__ = ["UserGroup", "Users", "user_ids"]


@dataclass(frozen=True)
class UserGroup:
    """`count` users alike but for their ids: `{name}-{n:0{width}d}` for n from 1 to count."""

    name: str
    count: int
    width: int
    country: str
    licenses: frozenset[str]

    def id(self, k: int) -> str:
        """The id of the member at 0-based position `k`."""
        return f"{self.name}-{k + 1:0{self.width}d}"

    def ids(self) -> list[str]:
        """Every member's id, in order."""
        head, width = f"{self.name}-", self.width
        return [f"{head}{n:0{width}d}" for n in range(1, self.count + 1)]


class Users(Sequence[User]):
    """Single users and groups in file order, read as the sequence of every member."""

    def __init__(self, parts: Iterable[User | UserGroup]) -> None:
        self.parts = tuple(parts)
        sizes = [p.count if isinstance(p, UserGroup) else 1 for p in self.parts]
        self._starts = [0, *itertools.accumulate(sizes)]

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, index: int) -> User: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[User, ...]: ...
    def __getitem__(self, index: int | slice) -> User | tuple[User, ...]:
        if isinstance(index, slice):
            return tuple(self[k] for k in range(*index.indices(len(self))))
        n = len(self)
        k = operator.index(index) + (n if index < 0 else 0)
        if not 0 <= k < n:
            raise IndexError("user index out of range")
        p = bisect.bisect_right(self._starts, k) - 1
        part = self.parts[p]
        if isinstance(part, UserGroup):
            return User(part.id(k - self._starts[p]), part.country, part.licenses)
        return part

    def __iter__(self) -> Iterator[User]:
        for part in self.parts:
            if isinstance(part, UserGroup):
                yield from map(User, part.ids(), itertools.repeat(part.country),
                               itertools.repeat(part.licenses))
            else:
                yield part

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Users):
            return self.parts == other.parts or tuple(self) == tuple(other)
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:  # equal to the tuple of its users, so hashed as that tuple
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Users({self.parts!r})"

    def ids(self) -> list[str]:
        """Every user's id, in order."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, UserGroup):
                out += part.ids()
            else:
                out.append(part.id)
        return out

    def kinds(self) -> list[tuple[int, str, frozenset[str]]]:
        """(count, country, effective licenses) of each part: `RatingSetup.user_kinds` reads
        this instead of every member."""
        return [(part.count if isinstance(part, UserGroup) else 1, part.country,
                 User("", part.country, part.licenses).effective_licenses)
                for part in self.parts]


def user_ids(users: Sequence[User]) -> list[str]:
    """Every user's id, in order, without making a `User` per group member."""
    return users.ids() if isinstance(users, Users) else [u.id for u in users]
