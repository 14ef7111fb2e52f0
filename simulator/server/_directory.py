"""Who may connect to `callsim serve`, and the names a connection may use once it has.

A connection says `hello` with an org id and that org's token; from then on
it acts for that org only: user ids are looked up among that org's users, and
toll-free numbers among that org's numbers (the rating core keys them by
org).  So a client can never name another tenant's user, call or balance.

Tokens come from the scenario (`[[orgs]] token`) or, overriding it, from the
environment variable `CALLSIM_TOKEN_<ORG>` (the org id upper-cased, every
character other than A-Z and 0-9 replaced by `_`), so that real credentials
need not live in a scenario file.  An org with neither cannot be logged into.

One credential opens one org: the server refuses to start (`TokenConflict`)
when two org ids map to the same variable (`acme-eu`, `acme_eu`), or when two
orgs end up with the same token, wherever each came from.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from rating_core import RatingSetup, user_ids
from ..scenario import org_env_var

TOKEN_ENV_PREFIX = "CALLSIM_TOKEN_"


class TokenConflict(ValueError):
    """Two orgs would share a credential; the message names both and where their tokens come from."""


def token_env_var(org_id: str) -> str:
    """The environment variable that overrides an org's token: `contoso-eu` -> CALLSIM_TOKEN_CONTOSO_EU."""
    return org_env_var(TOKEN_ENV_PREFIX, org_id)


@dataclass(frozen=True)
class Tenant:
    """One org as the server sees it: its index in the rating core and its users by id."""

    index: int
    id: str
    token: str | None
    users: Mapping[str, int]  # org-local user id -> global user index (Arrivals.user)


class Directory:
    """Orgs by id, with their resolved tokens; built once at server start."""

    def __init__(self, setup: RatingSetup, environ: Mapping[str, str]) -> None:
        """Raises TokenConflict when one credential would open two orgs (see `resolve_tokens`)."""
        self._tenants: dict[str, Tenant] = {}
        tokens = resolve_tokens(setup, environ)
        first = 0
        for o, (org, token) in enumerate(zip(setup.orgs, tokens)):
            n = len(org.users)
            local = dict(zip(user_ids(org.users), range(first, first + n)))
            self._tenants[org.id] = Tenant(o, org.id, token, local)
            first += n

    def authenticate(self, org_id: str, token: str) -> Tenant | None:
        """The tenant if `token` is its token; None for an unknown org or a wrong token.

        The comparison is constant-time, and an unknown org costs the same
        comparison, so timing does not tell which org ids exist.
        """
        tenant = self._tenants.get(org_id)
        expected = tenant.token if tenant and tenant.token else "\0" * max(len(token), 1)
        ok = hmac.compare_digest(token.encode(), expected.encode())
        return tenant if ok and tenant is not None and tenant.token else None

    def without_token(self) -> list[str]:
        """Org ids nobody can log into (no token in the scenario nor the environment)."""
        return [t.id for t in self._tenants.values() if not t.token]


def resolve_tokens(setup: RatingSetup, environ: Mapping[str, str]) -> list[str | None]:
    """Each org's token (None: nobody can log into it), checked to open that org only.

    Raises TokenConflict, naming both orgs, when two org ids map to one
    environment variable (set or not: whoever sets it later would log into
    both), or when two orgs have the same token.  Token values are never
    put in the message.
    """
    var_owner: dict[str, str] = {}
    token_owner: dict[str, tuple[str, str]] = {}  # token -> (org id, where it came from)
    tokens: list[str | None] = []
    for org in setup.orgs:
        var = token_env_var(org.id)
        other = var_owner.setdefault(var, org.id)
        if other != org.id:
            raise TokenConflict(f"orgs {other!r} and {org.id!r} both take their token from {var}: "
                                f"rename one so that each org has its own variable")
        from_env = environ.get(var)
        token = from_env or org.token
        tokens.append(token or None)
        if not token:
            continue
        source = var if from_env else f"the scenario's token of {org.id!r}"
        seen = token_owner.setdefault(token, (org.id, source))
        if seen[0] != org.id:
            raise TokenConflict(f"orgs {seen[0]!r} and {org.id!r} have the same token ({seen[1]}, "
                                f"{source}): one credential would log into both; give each org its own")
    return tokens
