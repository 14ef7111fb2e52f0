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
from typing import TypeVar, overload

from ._model import User

__all__ = ["UserGroup", "UserIds", "Users", "user_ids"]

T = TypeVar("T")


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


class _Written(Sequence[T]):
    """Single entries and `UserGroup`s in order, read as the sequence of every member."""

    def __init__(self, parts: Iterable[object]) -> None:
        self.parts = tuple(parts)
        sizes = [p.count if isinstance(p, UserGroup) else 1 for p in self.parts]
        self._starts = [0, *itertools.accumulate(sizes)]

    def _single(self, part: object) -> T:
        raise NotImplementedError

    def _members(self, group: UserGroup, k: int | None = None) -> Iterable[T]:
        """Every member (k None), or the member at position k alone."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...
    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self[k] for k in range(*index.indices(len(self))))
        n = len(self)
        k = operator.index(index) + (n if index < 0 else 0)
        if not 0 <= k < n:
            raise IndexError("user index out of range")
        p = bisect.bisect_right(self._starts, k) - 1
        part = self.parts[p]
        if isinstance(part, UserGroup):
            return next(iter(self._members(part, k - self._starts[p])))
        return self._single(part)

    def __iter__(self) -> Iterator[T]:
        for part in self.parts:
            if isinstance(part, UserGroup):
                yield from self._members(part)
            else:
                yield self._single(part)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, type(self)) and self.parts == other.parts:
            return True
        if isinstance(other, (type(self), tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:  # equal to the tuple of its members, so hashed as that tuple
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.parts!r})"


class Users(_Written[User]):
    """Single users and groups in file order, read as the sequence of every member."""

    def _single(self, part: object) -> User:
        assert isinstance(part, User)
        return part

    def _members(self, group: UserGroup, k: int | None = None) -> Iterable[User]:
        ids = group.ids() if k is None else [group.id(k)]
        return map(User, ids, itertools.repeat(group.country), itertools.repeat(group.licenses))

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


class UserIds(_Written[str]):
    """Every user's id in the global numbering (`Tables.user_ids`), each group kept whole.

    The CDR writers lay a group's ids out with numpy (`parts`), and a table of a million ids
    pickles to each writer as its groups, not as a million strings.
    """

    def __init__(self, orgs: Iterable[Sequence[User]]) -> None:
        parts: list[str | UserGroup] = []
        for users in orgs:
            if isinstance(users, Users):
                parts += [p if isinstance(p, UserGroup) else p.id for p in users.parts]
            else:
                parts += [u.id for u in users]
        super().__init__(parts)  # a single user's id, or a group

    def _single(self, part: object) -> str:
        assert isinstance(part, str)
        return part

    def _members(self, group: UserGroup, k: int | None = None) -> Iterable[str]:
        return group.ids() if k is None else [group.id(k)]
