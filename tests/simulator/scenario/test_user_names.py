"""An org's names read from the names themselves (`_user_names`) answer as a table of every
member's id would: the same clashes, reported with the same words, and the same lookups."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.scenario._user_names import Claims, OrgNames
from simulator.units import show

NAMES = ["g", "h", "g-1", "g-01", "g-2", "g-02", "g-10", "h-1", "g-1-1", "g-", "-1", "g-٣", "1"]


def members(name: str, count: int, width: int) -> list[str]:
    return [f"{name}-{n:0{width}d}" for n in range(1, count + 1)]


def claim_by_table(taken: dict, place: str, what: str, name: str, ids: list[str] | None) -> str | None:
    """The rule spelled out with a dict entry per member id."""
    for candidate in [name, *(ids or [])]:
        if candidate not in taken:
            continue
        earlier, at = taken[candidate]
        if candidate != name:
            return f"member id {show(candidate)} is already a {earlier} (at {at})"
        if earlier == what:
            return f"duplicate {what} {show(name)} (first at {at})"
        return f"{show(name)} is already a {earlier} (at {at})"
    taken[name] = (what, place)
    for uid in ids or []:
        taken[uid] = ("user id", place)
    return None


tables = st.lists(st.one_of(
    st.tuples(st.just("user"), st.sampled_from(NAMES + ["g-3", "h-02", "g-0"])),
    st.tuples(st.just("group"), st.sampled_from(NAMES), st.integers(1, 12), st.integers(1, 2)),
), max_size=8)


@settings(max_examples=500, deadline=None)
@given(tables)
def test_claims_and_lookups_match_a_table_of_every_member(entries: list) -> None:
    claims, names = Claims(), OrgNames(id="o", complete=True)
    taken: dict = {}
    ids: list[str] = []
    first_index: dict[str, int] = {}
    for j, entry in enumerate(entries):
        place = f"orgs[0].users[{j}]"
        if entry[0] == "user":
            name = entry[1]
            expected = claim_by_table(taken, f"{place}.id", "user id", name, None)
            assert claims.claim(f"{place}.id", "user id", name) == expected
            names.add_user(name)
            new = [name]
        else:
            _, name, count, width = entry
            width = max(width, len(str(count)))  # as the loader sets it: every id has `width` digits
            new = members(name, count, width)
            expected = claim_by_table(taken, f"{place}.group", "group", name, new)
            assert claims.claim(f"{place}.group", "group", name, (count, width)) == expected
            names.add_group(name, count, width)
        for k, uid in enumerate(new):
            first_index.setdefault(uid, len(ids) + k)
        ids += new
    assert len(names) == len(ids)
    assert [names.id_at(k) for k in range(len(ids))] == ids
    for uid in set(ids) | set(NAMES) | {"g-0001", "g-13", "g-001"}:
        assert names.get(uid) == first_index.get(uid)
