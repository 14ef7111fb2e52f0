"""Who a SIP request is from and what it asks for: the scenario's SIP identities, looked up.

Pure look-ups, no sockets: the SIP server asks here which org a digest username or a source
address stands for, and turns an INVITE's identities into the call it submits to the exchange
(`call_for`), or into the refusal it answers with.  The mapping rules live here and nowhere
else (docs/sip.md has them as a table):

1. The Request-URI user is the dialled number (E.164, `+` optional; `-`, `.`, `(`, `)` as in
   tel URIs are ignored).  If it is one of an org's toll-free numbers and the request carries
   no conference header, the call is that org's `toll_free` call, whoever sends it: the caller
   (From, or P-Asserted-Identity when present) must be a number, or a SIP user name of the
   authenticated org whose user has a number; that number is the one rated.
2. Any other call needs an org: the one whose digest credentials the request carried, or
   whose `trusted` networks hold its source address.  Without one: 407 (challenge).
3. The dialled user must be a number: else 404.
4. The calling user is the one named by the `X-Callsim-Conference` header when present (a
   `conference_dial_out` organised by that user), else by the caller; a name is looked up among
   the org's SIP user names first, then among its users' numbers.  A user of another org:
   403.  Nobody: 404.
5. `from_number` is the calling user's number; for a dial-out whose organiser has none, the
   caller's (the bridge's) if it is a number; else none (0).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from rating_core import CallKind, user_ids
from ..scenario import DEFAULT_SIP_REALM, Scenario, sip_password_env_var

__all__ = [
    "AUTHENTICATE", "CONFERENCE_HEADER", "Credentials", "SipCall", "SipConflict", "SipIdentities",
    "SipRefusal", "parse_user_number",
]

CONFERENCE_HEADER = "X-Callsim-Conference"
_VISUAL_SEPARATORS = re.compile(r"[-.()]")
_E164_DIGITS = re.compile(r"[1-9][0-9]{1,14}", re.ASCII)
_SEVERAL = -1  # in the name index: more than one org has this SIP user name


class SipConflict(ValueError):
    """The scenario's SIP identities are ambiguous in a way only the server cares about (two
    orgs with one toll-free number, or one password variable); the message names both orgs."""


@dataclass(frozen=True)
class SipCall:
    """A call to submit, with the arguments `Exchange.submit_setup` takes."""

    org: int  # org index
    user: int  # global user index, -1 for toll_free
    kind: int  # a rating_core.CallKind
    to_number: int  # E.164 digits
    from_number: int  # E.164 digits, 0 when none


@dataclass(frozen=True)
class SipRefusal:
    """A request the mapping refuses: the final response's status and reason phrase, and a
    detail for the log or a Warning header (it names nothing the caller did not send)."""

    status: int
    phrase: str
    detail: str


AUTHENTICATE = SipRefusal(407, "Proxy Authentication Required",
                          "credentials or a trusted source address are required")


@dataclass(frozen=True)
class Credentials:
    """An org's digest credentials; `password` None: nobody can authenticate as it (yet)."""

    org: int
    org_id: str
    username: str
    # The environment's CALLSIM_SIP_PASSWORD_<ORG>, else the scenario's; never in a repr.
    password: str | None = field(repr=False)
    realm: str
    trusted: tuple[IPv4Network | IPv6Network, ...] = ()


def parse_user_number(user: str) -> int | None:
    """A URI user part as E.164 digits: "+14155550100", "14155550100" or "+1-415-555-0100"
    -> 14155550100; parameters after `;` are ignored; anything else (a name) -> None."""
    text = _VISUAL_SEPARATORS.sub("", user.partition(";")[0])
    text = text[1:] if text.startswith("+") else text
    return int(text) if _E164_DIGITS.fullmatch(text) else None


class SipIdentities:
    """The scenario's SIP identities, indexed for the server; built once when it starts."""

    def __init__(self, scenario: Scenario, environ: Mapping[str, str]) -> None:
        """Raises SipConflict (see `from_scenario`)."""
        setup, sip = scenario.setup, scenario.sip
        self._org_ids = [org.id for org in setup.orgs]
        self._blocks = sip.numbers
        self._block_starts = [b.first_number for b in sip.numbers]
        self._by_user = sorted(sip.numbers, key=lambda b: b.first_user)
        self._user_starts = [b.first_user for b in self._by_user]
        self._names: list[dict[str, int]] = []  # per org: SIP user name -> global user
        self._name_orgs: dict[str, int] = {}  # SIP user name -> its org, or _SEVERAL
        self._toll_free: dict[int, int] = {}  # number -> org
        first = 0
        for o, org in enumerate(setup.orgs):
            names = dict(zip(user_ids(org.users), range(first, first + len(org.users))))
            for k in range(first, first + len(org.users)):
                name = sip.user_names.get(k)
                if name is not None:  # the SIP name replaces the id
                    del names[org.users[k - first].id]
                    names[name] = k
            for name in names:
                self._name_orgs[name] = o if self._name_orgs.get(name, o) == o else _SEVERAL
            self._names.append(names)
            first += len(org.users)
            for text in org.toll_free_numbers:
                owner = self._toll_free.setdefault(int(text[1:]), o)
                if owner != o:
                    raise SipConflict(f"orgs {self._org_ids[owner]!r} and {org.id!r} both have the "
                                      f"toll-free number {text}: a SIP call to it would have two "
                                      "owners")
        self._credentials: dict[int, Credentials] = {}
        self._by_username: dict[str, Credentials] = {}
        self._trusted: dict[tuple[int, int], dict[int, int]] = {}  # (version, prefix) -> net -> org
        var_owner: dict[str, str] = {}
        for o, (org, org_sip) in enumerate(zip(setup.orgs, sip.orgs)):
            if org_sip is None:
                continue
            for net in org_sip.trusted:
                self._trusted.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = o
            if org_sip.username is None:
                continue
            var = sip_password_env_var(org.id)
            other = var_owner.setdefault(var, org.id)
            if other != org.id:
                raise SipConflict(f"orgs {other!r} and {org.id!r} both take their SIP password "
                                  f"from {var}: rename one so that each org has its own variable")
            password = environ.get(var) or org_sip.password
            creds = Credentials(o, org.id, org_sip.username, password, org_sip.realm,
                                org_sip.trusted)
            self._credentials[o] = self._by_username[org_sip.username] = creds
        self._prefixes = sorted(self._trusted, key=lambda k: -k[1])  # most specific first

    @classmethod
    def from_scenario(cls, scenario: Scenario, environ: Mapping[str, str]) -> SipIdentities:
        """Index `scenario.sip`; passwords from `environ` (CALLSIM_SIP_PASSWORD_<ORG>) win.

        Raises SipConflict when two orgs have the same toll-free number, or when two orgs with
        a SIP username take their password from the same variable (`acme-eu`, `acme_eu`).
        """
        return cls(scenario, environ)

    # -- orgs ---------------------------------------------------------------------------------
    def org_id(self, org: int) -> str:
        return self._org_ids[org]

    def credentials(self, org: int) -> Credentials | None:
        """The org's digest credentials, None when it has no `[orgs.sip] username`."""
        return self._credentials.get(org)

    def by_username(self, username: str) -> Credentials | None:
        """The credentials of the org with this digest username, None for an unknown one."""
        return self._by_username.get(username)

    def without_password(self) -> list[str]:
        """Org ids with a username but no password: digest can never succeed for them."""
        return [c.org_id for c in self._credentials.values() if not c.password]

    def trusted_org(self, address: str | IPv4Address | IPv6Address) -> int | None:
        """The org whose `trusted` networks hold `address` ("127.0.0.1", "::1"), else None.

        An IPv4 address seen through an IPv6 socket (::ffff:127.0.0.1) counts as the IPv4
        address.  Networks never overlap between orgs (the loader checks), so one org at most.
        """
        if not self._trusted:
            return None
        try:
            ip = ip_address(address.split("%")[0] if isinstance(address, str) else address)
        except ValueError:
            return None
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value, bits = int(ip), ip.max_prefixlen
        for version, prefix in self._prefixes:
            if version != ip.version:
                continue
            org = self._trusted[(version, prefix)].get(value >> (bits - prefix) << (bits - prefix))
            if org is not None:
                return org
        return None

    def realm_for(self, caller: str) -> str:
        """The realm to challenge a request from `caller` with: its org's realm when the caller
        names exactly one org's user (by number, or by a SIP user name only one org uses),
        else "callsim" (the default realm)."""
        org = self._org_of(caller)
        creds = self._credentials.get(org) if org is not None else None
        return creds.realm if creds is not None else DEFAULT_SIP_REALM

    # -- numbers and users --------------------------------------------------------------------
    def toll_free_org(self, number: int) -> int | None:
        """The org that owns this toll-free number, else None."""
        return self._toll_free.get(number)

    def number_owner(self, number: int) -> tuple[int, int] | None:
        """(org, global user) of the user with this number, else None."""
        i = bisect.bisect_right(self._block_starts, number) - 1
        if i < 0:
            return None
        block = self._blocks[i]
        if number not in block:
            return None
        return block.org, block.first_user + number - block.first_number

    def user_number(self, user: int) -> int:
        """The user's number, 0 when they have none."""
        i = bisect.bisect_right(self._user_starts, user) - 1
        if i < 0:
            return 0
        block = self._by_user[i]
        offset = user - block.first_user
        return block.first_number + offset if offset < block.count else 0

    def caller(self, who: str) -> tuple[int, int] | None:
        """(org, global user) that `who` names when that is one user of one org: a number, or a
        SIP user name only one org uses; else None."""
        org = self._org_of(who)
        user = self.user_in(org, who) if org is not None else None
        return (org, user) if user is not None else None  # type: ignore[return-value]

    def user_in(self, org: int, who: str) -> int | None:
        """The global user that `who` (a SIP user name, else a number) names in `org`, or None."""
        user = self._names[org].get(who)
        if user is not None:
            return user
        number = parse_user_number(who)
        owner = self.number_owner(number) if number is not None else None
        return owner[1] if owner is not None and owner[0] == org else None

    user_in_org = user_in

    def _org_of(self, who: str) -> int | None:
        """The one org whose user `who` names (a number, or a name only that org uses)."""
        org = self._name_orgs.get(who)
        if org is not None:
            return None if org == _SEVERAL else org
        number = parse_user_number(who)
        owner = self.number_owner(number) if number is not None else None
        return owner[0] if owner is not None else None

    # -- the mapping --------------------------------------------------------------------------
    def call_for(self, caller: str, dialled: str, conference: str | None,
                 org: int | None) -> SipCall | SipRefusal:
        """The call an INVITE asks for, or why not (the module's rules 1-5).

        `caller`: the From user part, or P-Asserted-Identity's when present; `dialled`: the
        Request-URI user part; `conference`: the X-Callsim-Conference header's value, None when
        absent; `org`: the org the request authenticated as or is trusted for, None if neither.
        """
        to_number = parse_user_number(dialled)
        owner = self._toll_free.get(to_number) if to_number is not None else None
        if owner is not None and conference is None:
            return self._toll_free_call(owner, to_number, caller, org)  # type: ignore[arg-type]
        if org is None:
            return AUTHENTICATE
        if to_number is None:
            return SipRefusal(404, "Not Found", f"{dialled[:64]!r} is not an E.164 number")
        who = caller if conference is None else conference
        user = self.user_in(org, who)
        if user is None:
            return self._not_a_user(who, org, "organiser" if conference is not None else "caller")
        from_number = self.user_number(user)
        if not from_number and conference is not None:  # the bridge's number, if it has one
            from_number = parse_user_number(caller) or 0
        kind = CallKind.OUTBOUND if conference is None else CallKind.CONFERENCE_DIAL_OUT
        return SipCall(org, user, int(kind), to_number, from_number)

    def _toll_free_call(self, owner: int, to_number: int, caller: str,
                        org: int | None) -> SipCall | SipRefusal:
        from_number = parse_user_number(caller)
        if from_number is None and org is not None:
            user = self._names[org].get(caller)
            from_number = self.user_number(user) if user is not None else None
        if not from_number:
            return SipRefusal(404, "Not Found", f"a toll-free call needs a caller number, got "
                                                f"{caller[:64]!r}")
        return SipCall(owner, -1, int(CallKind.TOLL_FREE), to_number, from_number)

    def _not_a_user(self, who: str, org: int, role: str) -> SipRefusal:
        other = self._org_of(who)
        if other is not None and other != org or self._name_orgs.get(who) == _SEVERAL:
            return SipRefusal(403, "Forbidden", f"the {role} {who[:64]!r} is not a user of org "
                                                f"{self._org_ids[org]!r}")
        return SipRefusal(404, "Not Found", f"no user {who[:64]!r} in org {self._org_ids[org]!r}")

