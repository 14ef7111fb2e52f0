"""Who may connect to `callsim serve`, and the names a connection may use once it has.

A connection says `hello` with an org id and that org's token; from then on
it acts for that org only: user ids are looked up among that org's users, and
toll-free numbers among that org's numbers (the rating core keys them by
org).  So a client can never name another tenant's user, call or balance.

Tokens come from the scenario (`[[orgs]] token`) or, overriding it, from the
environment variable `CALLSIM_TOKEN_<ORG>` (the org id upper-cased, every
character other than A-Z and 0-9 replaced by `_`), so that real credentials
need not live in a scenario file.  An org with neither cannot be logged into.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rating_core import RatingSetup

TOKEN_ENV_PREFIX = "CALLSIM_TOKEN_"
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def token_env_var(org_id: str) -> str:
    """The environment variable that overrides an org's token: `contoso-eu` -> CALLSIM_TOKEN_CONTOSO_EU."""
    return TOKEN_ENV_PREFIX + _NOT_ALNUM.sub("_", org_id.upper())


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
        self._tenants: dict[str, Tenant] = {}
        users = setup.users()
        first = 0
        for o, org in enumerate(setup.orgs):
            n = len(org.users)
            local = {u.id: first + k for k, (_, u) in enumerate(users[first : first + n])}
            token = environ.get(token_env_var(org.id)) or org.token
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
