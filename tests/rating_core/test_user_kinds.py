"""Pools and the admission's user columns are built per run of users alike (`user_kinds`):
the same capacities and columns as built user by user."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import Org, Plans, RatingSetup, Tariff, User, UserGroup, UserIds, Users, pool_capacities, user_ids
from rating_core._admission import _POOL_KINDS, Admission, _license_bits
from rating_core._ledger import Ledger

LICENSES = ["phone_system", "domestic_calling_plan", "international_calling_plan",
            "audio_conferencing", "communications_credits", "e5"]


def capacities_user_by_user(setup: RatingSetup) -> list[tuple[int, str, int]]:
    """SPEC §3 Pools read literally: every user adds their plan's minutes to their org's pools."""
    plans, out = setup.plans, []
    for o, org in enumerate(setup.orgs):
        domestic: dict[str, int] = {}
        international: dict[str, int] = {}
        dial_out = 0
        for user in org.users:
            lic, cc = user.effective_licenses, user.country
            if lic & {"domestic_calling_plan", "international_calling_plan"}:
                domestic[cc] = domestic.get(cc, 0) + plans.domestic_minutes.get(
                    cc, plans.domestic_minutes["default"])
            if "international_calling_plan" in lic:
                international[cc] = international.get(cc, 0) + plans.international_minutes
            dial_out += plans.dial_out_minutes if "audio_conferencing" in lic else 0
        out += [(o, f"domestic:{cc}", 60 * m) for cc, m in sorted(domestic.items())]
        out += [(o, f"international:{cc}", 60 * m) for cc, m in sorted(international.items())]
        out.append((o, "dial_out", 60 * dial_out))
    return [p for p in out if p[2] > 0]


users = st.lists(st.tuples(st.sampled_from(["US", "GB", "FR"]),
                           st.frozensets(st.sampled_from(LICENSES)), st.integers(1, 4)),
                 max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(users, min_size=1, max_size=4))
def test_pools_and_user_columns_per_run_match_user_by_user(orgs: list) -> None:
    built = []
    for o, runs in enumerate(orgs):
        members = [User(f"u{o}-{k}-{n}", cc, lic) for k, (cc, lic, count) in enumerate(runs)
                   for n in range(count)]
        built.append(Org(f"o{o}", tuple(members)))
    setup = RatingSetup(start=datetime(2026, 11, 1, tzinfo=timezone.utc), end_ms=600_000,
                        currency="USD", plans=Plans({"default": 100, "GB": 7}),
                        tariffs=(Tariff("44", 20_000, 60, 60, "GB", "A"),), toll_free_tariffs=(),
                        orgs=tuple(built))
    assert sum(k.count for k in setup.user_kinds) == sum(len(o.users) for o in setup.orgs)
    assert pool_capacities(setup) == capacities_user_by_user(setup)

    ledger = Ledger(setup)
    admission = Admission(setup, ledger)
    columns = admission._users
    everyone = setup.users()
    cidx = {c: i for i, c in enumerate(admission.countries)}
    assert columns.country.tolist() == [cidx[u.country] for _, u in everyone] + [-1]
    n_countries = max(len(cidx), 1)
    assert columns.pool_base.tolist() == [(o * n_countries + cidx[u.country]) * _POOL_KINDS
                                          for o, u in everyone] + [0]
    assert columns.key.tolist() == [2 * _license_bits(u.effective_licenses) for _, u in everyone] + [0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["US", "GB"])),
                          st.tuples(st.sampled_from(["g", "h"]), st.integers(1, 5),
                                    st.integers(1, 3), st.sampled_from(["US", "GB"]))), max_size=5))
def test_users_read_as_the_tuple_of_every_member(parts: list) -> None:
    lic = frozenset({"e5"})
    written = [User(p[0], p[1], lic) if len(p) == 2 else UserGroup(p[0], p[1], p[2], p[3], lic)
               for p in parts]
    expanded = tuple(u for p in written for u in (
        [p] if isinstance(p, User) else [User(f"{p.name}-{n:0{p.width}d}", p.country, lic)
                                         for n in range(1, p.count + 1)]))
    users = Users(written)
    assert len(users) == len(expanded) and tuple(users) == expanded and users == expanded
    assert [users[k] for k in range(-len(users), len(users))] == list(expanded + expanded)
    assert users[1:4] == expanded[1:4] and user_ids(users) == [u.id for u in expanded]
    ids = UserIds([users, expanded])  # a table of two orgs: one as written, one user by user
    every = tuple(u.id for u in expanded) * 2
    assert ids == every and len(ids) == len(every) and tuple(ids) == every
    assert [ids[k] for k in range(-len(ids), len(ids))] == list(every + every) and ids[2:5] == every[2:5]
    setup = RatingSetup(start=datetime(2026, 11, 1, tzinfo=timezone.utc), end_ms=1, currency="USD",
                        plans=Plans(), tariffs=(), toll_free_tariffs=(), orgs=(Org("o", users),))
    per_user = RatingSetup(**{**vars(setup), "orgs": (Org("o", expanded),)})
    assert pool_capacities(setup) == pool_capacities(per_user)
    assert sum(k.count for k in setup.user_kinds) == len(expanded)
