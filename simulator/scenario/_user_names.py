"""The names an org's `[[orgs.users]]` tables define: user ids, group names, and group members'
ids (`{group}-{n:0{width}d}`), looked up without an entry per member.

A group of a million users is normal, and its members' ids matter only when another table
names one (`[[calls]] user = "sales-0042"`) or when a name is used twice.  Both questions are
answered by reading the name: a member id is its group's name, "-", and exactly `width` ASCII
digits from 1 to the group's count (a width never shorter than the count's digits).  Two groups' members never share an id: if
`G-D1 == H-D2` with digit strings D1, D2 and G shorter than H, then H is G, "-" and the head
of D1, so D1 would hold a "-".
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ..units import show

__all__ = ["Claims", "OrgNames"]


def _as_member(name: str) -> tuple[str, int, int] | None:
    """(group, width, n) when `name` has the form of member n of a group of that width."""
    group, dash, digits = name.rpartition("-")
    if not dash or not digits.isascii() or not digits.isdigit():
        return None
    return group, len(digits), int(digits)


@dataclass
class _Group:
    name: str
    first: int  # local index of member 1
    count: int
    width: int
    place: str = ""


@dataclass
class OrgNames:
    """What other tables may refer to in one org, with local user indices."""

    id: str | None
    complete: bool  # False: the org had problems, so references into it are not checked
    groups: dict[str, range] = field(default_factory=dict)  # name -> members (first of a name)
    offset: int = 0  # global index of the org's first user
    _singles: dict[str, int] = field(default_factory=dict)  # id -> local index (first if repeated)
    _runs: dict[str, list[_Group]] = field(default_factory=dict)  # every group of each name
    _starts: list[int] = field(default_factory=lambda: [0])  # local index of each table's first
    _tables: list[str | _Group] = field(default_factory=list)  # a single user's id, or a group
    _seen: dict[str, int | None] = field(default_factory=dict)  # ids looked up: `get`'s answers

    def __len__(self) -> int:
        return self._starts[-1]

    def add_user(self, uid: str) -> None:
        self._seen.clear()
        self._singles.setdefault(uid, len(self))
        self._tables.append(uid)
        self._starts.append(len(self) + 1)

    def add_group(self, name: str, count: int, width: int) -> None:
        self._seen.clear()
        group = _Group(name, len(self), count, width)
        self._runs.setdefault(name, []).append(group)
        self.groups.setdefault(name, range(group.first, group.first + count))
        self._tables.append(group)
        self._starts.append(len(self) + count)

    def get(self, uid: str) -> int | None:
        """The local index of the user with id `uid` (the first one, if it is repeated)."""
        if uid in self._seen:  # 200,000 calls name a few thousand users
            return self._seen[uid]
        local = self._seen[uid] = self._find(uid)
        return local

    def _find(self, uid: str) -> int | None:
        found = [self._singles[uid]] if uid in self._singles else []
        member = _as_member(uid)
        if member is not None:
            name, width, n = member
            found += [g.first + n - 1 for g in self._runs.get(name, ())
                      if g.width == width and 1 <= n <= g.count]
        return min(found) if found else None

    def __contains__(self, uid: str) -> bool:
        return self.get(uid) is not None

    def id_at(self, k: int) -> str:
        """The id of the user at local index `k`."""
        t = bisect.bisect_right(self._starts, k) - 1
        table = self._tables[t]
        if isinstance(table, str):
            return table
        return f"{table.name}-{k - table.first + 1:0{table.width}d}"

    @property
    def ids(self) -> "_Ids":
        """The ids by local index, as a sequence (`ids[k]`)."""
        return _Ids(self)


class _Ids:
    def __init__(self, names: OrgNames) -> None:
        self._names = names

    def __getitem__(self, k: int) -> str:
        return self._names.id_at(k)

    def __len__(self) -> int:
        return len(self._names)


class Claims:
    """The names one org's `[[orgs.users]]` tables took so far, each with where it was taken.

    Group names share the namespace of user ids because `[[traffic]] users` may be either.
    """

    def __init__(self) -> None:
        self._named: dict[str, tuple[str, str]] = {}  # user id or group name -> (what, place)
        # names above that have the form of a group member: (group, width) -> [(n, name)]
        self._member_like: dict[tuple[str, int], list[tuple[int, str]]] = {}
        self._groups: dict[str, _Group] = {}  # group name -> its members

    def claim(self, place: str, what: str, name: str,
              members: tuple[int, int] | None = None) -> str | None:
        """Take `name` (and, for a group, its `members`: (count, width)); the problem instead
        when the name, or a member's id, is taken already, naming the first such."""
        earlier = self._taken(name)
        if earlier is not None:
            if earlier[0] == what:
                return f"duplicate {what} {show(name)} (first at {earlier[1]})"
            return f"{show(name)} is already a {earlier[0]} (at {earlier[1]})"
        if members is not None:
            count, width = members
            clashes = [(n, other) for n, other in self._member_like.get((name, width), ())
                       if 1 <= n <= count]
            if clashes:
                member = min(clashes)[1]
                taken_as, at = self._named[member]
                return f"member id {show(member)} is already a {taken_as} (at {at})"
        self._named[name] = (what, place)
        member = _as_member(name)
        if member is not None:
            self._member_like.setdefault(member[:2], []).append((member[2], name))
        if members is not None:
            self._groups[name] = _Group(name, 0, members[0], members[1], place)
        return None

    def _taken(self, name: str) -> tuple[str, str] | None:
        if name in self._named:
            return self._named[name]
        member = _as_member(name)
        if member is not None:
            group = self._groups.get(member[0])
            if group is not None and group.width == member[1] and 1 <= member[2] <= group.count:
                return ("user id", group.place)
        return None
