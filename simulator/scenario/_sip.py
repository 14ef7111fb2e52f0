"""SIP identities in the scenario: users' numbers and SIP user names, orgs' SIP credentials.

A SIP request says who calls in its From (or P-Asserted-Identity) user part, and what is dialled
in its Request-URI.  For callsim to map that onto a user, every number must name one user (or
one org's toll-free number), and every credential must open one org:

- `number` (a single user) or `number_base` (a group: member k, numbered as its id
  `sales-000k`, gets `number_base + k - 1`) give users E.164 numbers; all numbers of all
  users of all orgs, and the orgs' toll-free numbers, are distinct.
- A user's SIP user name is `sip_user` (single users only), else their user id; within an
  org the names are distinct (they share the namespace of user ids).
- `[orgs.sip]`: `username`/`password` for digest authentication (the realm is `realm`,
  "callsim" unless given), and/or `trusted` addresses and networks whose requests need no
  digest.  Usernames are distinct across orgs, and no address is trusted for two orgs.

This module checks those rules, which relate tables, while the loader walks the file, and
returns what the SIP server looks things up in (`SipConfig`).  Passwords may also come from
the environment (`sip_password_env_var`): that is resolved when the server starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from ..units import show
from . import _schema as schema

__all__ = [
    "NumberBlock", "OrgSip", "SipCollector", "SipConfig", "org_env_var", "sip_password_env_var",
]

SIP_PASSWORD_ENV_PREFIX = "CALLSIM_SIP_PASSWORD_"
MAX_E164_DIGITS = 15
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def org_env_var(prefix: str, org_id: str) -> str:
    """An org's environment variable: `prefix` + the id upper-cased, every character other than
    A-Z and 0-9 replaced by `_` (`contoso-eu` -> PREFIX_CONTOSO_EU)."""
    return prefix + _NOT_ALNUM.sub("_", org_id.upper())


def sip_password_env_var(org_id: str) -> str:
    """The variable that overrides `[orgs.sip] password`: CALLSIM_SIP_PASSWORD_CONTOSO_EU."""
    return org_env_var(SIP_PASSWORD_ENV_PREFIX, org_id)


@dataclass(frozen=True)
class NumberBlock:
    """Consecutive numbers of consecutive users of one org: a user's `number` (count 1) or a
    group's `number_base` (count = the group's size)."""

    first_number: int  # E.164 digits, as `rating_core.parse_number` gives them
    count: int
    org: int  # org index
    first_user: int  # global user index of the user with `first_number`

    def __contains__(self, number: int) -> bool:
        return self.first_number <= number < self.first_number + self.count


@dataclass(frozen=True)
class OrgSip:
    """An org's `[orgs.sip]` table, as written (the password may be overridden at serve time)."""

    username: str | None
    password: str | None = field(repr=False)  # a credential: kept out of logs and tracebacks
    realm: str
    trusted: tuple[IPv4Network | IPv6Network, ...]


@dataclass(frozen=True)
class SipConfig:
    """Every SIP identity of a scenario: empty for a scenario that says nothing of SIP."""

    numbers: tuple[NumberBlock, ...] = ()  # sorted by first_number, never overlapping
    user_names: Mapping[int, str] = field(default_factory=dict)  # global user -> `sip_user`
    orgs: tuple[OrgSip | None, ...] = ()  # by org index; None: no `[orgs.sip]`


@dataclass
class _Block:
    seq: int  # file order, so that a clash is reported at its second place
    place: str
    first_number: int
    count: int
    org: int
    first_local: int  # org-local index of the block's first user


class SipCollector:
    """Collects identities while the loader walks `[[orgs]]`; `finish` checks what relates them.

    Problems are (place, problem) pairs, each reported at the second use of a name or number,
    naming the first.
    """

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self._blocks: list[_Block] = []
        # (number, seq, (org place, k)): the place is written out only for a problem (an org
        # with 100,000 toll-free numbers is normal)
        self._toll_free: list[tuple[int, int, tuple[str, int]]] = []
        self._names: list[tuple[int, int, str, str]] = []  # (org, local user, sip_user, place)
        self._orgs: dict[int, OrgSip] = {}
        self._usernames: dict[str, str] = {}  # digest username -> place of its first use
        self._count = 0
        self._networks: list[tuple[IPv4Network | IPv6Network, str, int]] = []  # (net, place, org)

    def _seq(self) -> int:
        self._count += 1
        return self._count

    def user(self, place: str, org: int, first_local: int, model: schema.UserModel,
             group: bool) -> bool:
        """Record the identity keys of one `[[orgs.users]]` item; False if they do not fit it."""
        ok = True
        wrong = [("number_base", "number") if group else ("number", "number_base")]
        if group and model.sip_user is not None:
            self.problems.append((f"{place}.sip_user", "only for a single user (group members' "
                                  "SIP user names are their user ids)"))
            ok = False
        for key, instead in wrong:
            if getattr(model, instead) is not None:
                what = "a group" if group else "a single user"
                self.problems.append((f"{place}.{instead}", f"not for {what}: use {key}"))
                ok = False
        if not ok:
            return False
        number = model.number_base if group else model.number
        count = (model.count or 1) if group else 1
        if number is not None:
            first = int(number[1:])
            last = first + count - 1
            key = "number_base" if group else "number"
            if len(str(last)) != len(str(first)):
                self.problems.append((f"{place}.{key}", f"the group's last number +{last} has more "
                                      f"digits than {show(number)}: start lower"))
                return False
            self._blocks.append(_Block(self._seq(), f"{place}.{key}", first, count, org, first_local))
        if model.sip_user is not None:
            self._names.append((org, first_local, model.sip_user, f"{place}.sip_user"))
        return True

    def org(self, place: str, org: int, model: schema.OrgModel) -> None:
        """Record an org's toll-free numbers and its `[orgs.sip]` table."""
        first = self._count + 1
        self._count += len(model.toll_free_numbers)
        self._toll_free += [(int(number[1:]), first + k, (place, k))
                            for k, number in enumerate(model.toll_free_numbers)]
        sip = model.sip
        if sip is None:
            return
        sip_place = f"{place}.sip"
        if sip.username is None and not sip.trusted:
            self.problems.append((sip_place, 'give "username" (digest authentication) or '
                                  '"trusted" (addresses), or both'))
        if sip.password is not None and sip.username is None:
            self.problems.append((f"{sip_place}.password", 'only with "username"'))
        if sip.username is not None:
            first = self._usernames.setdefault(sip.username, f"{sip_place}.username")
            if first != f"{sip_place}.username":
                self.problems.append((f"{sip_place}.username", f"duplicate SIP username "
                                      f"{show(sip.username)} (first at {first}): one credential "
                                      "opens one org"))
        for k, net in enumerate(sip.trusted):
            self._networks.append((net, f"{sip_place}.trusted[{k}]", org))
        self._orgs[org] = OrgSip(sip.username, sip.password, sip.realm, tuple(sip.trusted))

    def finish(self, org_count: int, offsets: list[int], user_ids: list[list[str]],
               local_names: list[Mapping[str, int]]) -> SipConfig:
        """Check numbers, names and networks across tables; the config (its problems in
        `self.problems`).  `offsets[o]` is org o's first global user index, `user_ids[o]` its
        users' ids by local index and `local_names[o]` the same, id -> local index."""
        self._check_numbers()
        self._check_networks()
        names = self._check_names(user_ids, local_names)
        blocks = sorted(
            (NumberBlock(b.first_number, b.count, b.org, offsets[b.org] + b.first_local)
             for b in self._blocks), key=lambda b: b.first_number)
        return SipConfig(
            numbers=tuple(blocks),
            user_names={offsets[o] + local: name for (o, local), name in names.items()},
            orgs=tuple(self._orgs.get(o) for o in range(org_count)),
        )

    def _check_numbers(self) -> None:
        """Users' numbers never overlap each other, nor any org's toll-free number.

        Blocks are intervals (a group of a million users is one): sorted by their start, each
        overlaps an earlier one exactly when it starts at or before the furthest end so far.
        Toll-free numbers shared by two orgs are not this file's concern (a SIP server refuses
        them when it starts: `callsim run` rates them per org).
        """
        spans = [(b.first_number, b.first_number + b.count - 1, b.seq, b.place)
                 for b in self._blocks]
        toll_free: dict[int, tuple[int, str | tuple[str, int]]] = {}
        for number, seq, place in self._toll_free:
            toll_free.setdefault(number, (seq, place))
        spans += [(n, n, seq, place) for n, (seq, place) in toll_free.items()]
        spans.sort()
        reach, reach_seq, reach_place = -1, 0, ""
        for start, end, seq, place in spans:
            if start <= reach:
                later, earlier = (place, reach_place) if seq > reach_seq else (reach_place, place)
                later, earlier = _written(later), _written(earlier)
                self.problems.append((later, f"number +{start} is also given at {earlier}: every "
                                      "number names one user or org"))
            if end > reach:
                reach, reach_seq, reach_place = end, seq, place

    def _check_networks(self) -> None:
        """No address is trusted for two orgs (one credential, one org)."""
        ordered = sorted(self._networks, key=lambda n: (n[0].version, n[0].network_address,
                                                         -n[0].prefixlen))
        widest: tuple[IPv4Network | IPv6Network, str, int] | None = None
        for net, place, org in ordered:
            if widest is not None and widest[0].version == net.version and net.subnet_of(widest[0]):  # type: ignore[arg-type]
                if widest[2] != org:
                    self.problems.append((place, f"{net} is also trusted for another org (at "
                                          f"{widest[1]}): one address, one org"))
                continue
            widest = (net, place, org)

    def _check_names(self, user_ids: list[list[str]],
                     local_names: list[Mapping[str, int]]) -> dict[tuple[int, int], str]:
        """A `sip_user` may not be another user's id or `sip_user` in the same org."""
        chosen: dict[tuple[int, int], str] = {}
        taken: dict[tuple[int, str], str] = {}  # (org, sip_user) -> place
        for org, local, name, place in self._names:
            other = local_names[org].get(name) if org < len(local_names) else None
            if other is not None and other != local:
                self.problems.append((place, f"{show(name)} is the user id of another user "
                                      f"({show(user_ids[org][other])}): SIP user names default "
                                      "to user ids"))
                continue
            first = taken.setdefault((org, name), place)
            if first != place:
                self.problems.append((place, f"duplicate sip_user {show(name)} (first at {first})"))
                continue
            chosen[(org, local)] = name
        return chosen


def _written(place: str | tuple[str, int]) -> str:
    """A place as printed: a toll-free number's is kept as (org place, index) until then."""
    return place if isinstance(place, str) else f"{place[0]}.toll_free_numbers[{place[1]}]"
