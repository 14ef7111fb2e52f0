"""Each SPEC §3 rule has one home in the rating core, named in `rating_core`'s docstring.

The table in `rating_core.__doc__` is what a newcomer reads to find the function
to edit for a rule: every name in it must exist.  The increment rules
(`rating_core/_increments.py`, the recharge clauses of `_ledger`) are called with
arrays by the bulk passes and compiled for one call's scalars by the stepping loop
(`_stepping`): both must give the same answer.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import FrozenInstanceError
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rating_core
from rating_core import _increments as inc
from rating_core import _ledger as ledger
from rating_core import _stepping as stepping
from rating_core._columns import with_room

CORE = Path(rating_core.__file__).parent
TESTS = Path(__file__).resolve().parents[1]


def _rule_table() -> list[tuple[str, str]]:
    """(rule, dotted function) rows of the docstring's rule table."""
    doc = rating_core.__doc__
    table = doc.split("Where each SPEC §3 rule lives", 1)[1]
    return re.findall(r"``(_\w+)\.([\w.]+)``", table)


def test_every_function_the_rule_table_names_exists() -> None:
    rows = _rule_table()
    assert len(rows) >= 20
    for module, name in rows:
        obj = importlib.import_module(f"rating_core.{module}")
        for part in name.split("."):
            obj = getattr(obj, part)  # AttributeError names the stale row
        assert callable(obj), f"{module}.{name}"


def test_the_increment_cost_is_computed_in_one_place() -> None:
    """ceil(rate × r / 60) is written only in `_increments.ceil_cost`."""
    homes = [p.name for p in CORE.glob("*.py") if re.search(r"\+ 59\)\s*//\s*60", p.read_text())]
    assert homes == ["_increments.py"]


_ints = st.integers(0, 10**9)


_compiled = {}


def compiled(rule):
    """`rule` compiled by numba for scalars, as the stepping loop runs it."""
    import numba

    if rule not in _compiled:
        _compiled[rule] = numba.njit(rule)
    return _compiled[rule]


@settings(deadline=None)  # the first example compiles the rules
@given(st.lists(st.tuples(_ints, _ints, _ints, st.booleans(), _ints), min_size=1, max_size=20))
def test_increment_rules_give_the_same_answer_on_scalars_compiled_or_not_and_on_arrays(rows) -> None:
    """The stepping loop runs each rule on one call's scalars, by Python or compiled by
    numba; the bulk passes run it on arrays: one source, the same answers, SPEC §3's formulas."""
    rate, s, remaining, ok, balance = (np.array(col) for col in zip(*rows))
    p = inc.pool_part(remaining, s)
    r = s - p
    cost = inc.ceil_cost(rate, r)
    refused = inc.refused(r, ok, cost, balance)
    exhausts = inc.exhausts(r, ok, cost, balance)
    boundary = inc.boundary_ms(rate, s, remaining, 2)
    for i, (rate_i, s_i, rem_i, ok_i, bal_i) in enumerate(rows):
        for form in (lambda rule: rule, compiled):
            p_i = form(inc.pool_part)(rem_i, s_i)
            cost_i = form(inc.ceil_cost)(rate_i, s_i - p_i)
            assert p_i == min(rem_i, s_i) == p[i]
            assert cost_i == -(-rate_i * (s_i - p_i) // 60) == cost[i]
            assert form(inc.refused)(s_i - p_i, ok_i, cost_i, bal_i) == refused[i] == (
                s_i - p_i > 0 and (not ok_i or cost_i > bal_i))
            assert form(inc.exhausts)(s_i - p_i, ok_i, cost_i, bal_i) == exhausts[i]
            assert form(inc.boundary_ms)(rate_i, s_i, rem_i, 2) == boundary[i] == rate_i + 1000 * (s_i + rem_i)
            assert form(inc.boundary_ms)(rate_i, s_i, rem_i, 0) == rate_i


@settings(deadline=None)
@given(st.lists(st.tuples(st.booleans(), _ints, _ints, _ints, _ints), min_size=1, max_size=20))
def test_recharge_clauses_give_the_same_answer_on_scalars_compiled_or_not_and_on_arrays(rows) -> None:
    on, balance, below, t, until = (np.array(col) for col in zip(*rows))
    wanted = ledger.recharge_wanted(on, balance, below)
    allowed = ledger.attempt_allowed(t, until)
    accepts = ledger.card_accepts(t, until)
    for i, (on_i, bal_i, below_i, t_i, until_i) in enumerate(rows):
        for form in (lambda rule: rule, compiled):
            assert form(ledger.recharge_wanted)(on_i, bal_i, below_i) == wanted[i] == (on_i and bal_i < below_i)
            assert form(ledger.attempt_allowed)(t_i, until_i) == allowed[i] == (t_i >= until_i)
            assert form(ledger.card_accepts)(t_i, until_i) == accepts[i] == (t_i < until_i)
            assert form(ledger.next_attempt_ms)(t_i, until_i) == t_i + until_i


def test_the_compiled_loop_asks_only_what_its_cache_key_covers() -> None:
    """numba's cache is keyed on _stepping.py alone: every rule the loop calls must be in
    `RULES`, and the rules' source and the constants the loop reads from elsewhere (the
    event codes) are in the key it closes over, so that editing them rebuilds the loop."""
    loop = stepping.LOOP
    called = {getattr(stepping, name) for name in loop.__code__.co_names
              if getattr(getattr(stepping, name, None), "__module__", "").startswith("rating_core.")}
    assert called - {stepping._put} == set(stepping.RULES)
    key = stepping.compiled_loop().py_func.__closure__[0].cell_contents
    assert key == stepping._cache_key() and len(key) == 64
    for name in ("RECHARGE_SUCCEEDED", "RECHARGE_FAILED", "BALANCE_EXHAUSTED", "CARD_EXPIRED"):
        assert name in loop.__code__.co_names
        changed = {**vars(stepping), name: getattr(stepping, name) + 10}
        assert stepping._cache_key(changed) != key, name


def test_refusal_follows_spec_paying_one_increment() -> None:
    for ok, not_ok in ((np.True_, np.False_), (np.array([True]), np.array([False]))):
        assert not inc.refused(0, not_ok, 0, 0)  # the pool pays it all: credits not asked
        assert inc.refused(1, not_ok, 0, 10)  # credits must pay, and are not allowed
        assert inc.refused(1, ok, 11, 10) and inc.exhausts(1, ok, 11, 10)  # the balance is lower
        assert not inc.refused(1, ok, 10, 10)  # the balance is enough
        assert not inc.exhausts(1, not_ok, 11, 10)  # refused, but not for the balance
    assert inc.refused_reason(np.array([0, 60, 1])).tolist() == [
        rating_core.EndReason.BLOCKED_NO_BALANCE, rating_core.EndReason.DROPPED_BALANCE_EXHAUSTED,
        rating_core.EndReason.DROPPED_BALANCE_EXHAUSTED]


def test_boundaries_follow_spec_increments() -> None:
    """Answered at a with increment first/next: a, a + first, a + first + next, ..."""
    j = np.arange(4)
    assert inc.boundary_ms(5_000, 30, 6, j).tolist() == [5_000, 35_000, 41_000, 47_000]


def test_columns_grow_by_doubling_and_keep_their_rows() -> None:
    cols = [np.arange(4, dtype=np.int64), np.array([True, False, True, False])]
    assert with_room(cols, 4, 4, 64)[0] is cols[0]  # room enough: the same arrays
    grown = with_room(cols, 3, 5, 8)
    assert [len(c) for c in grown] == [10, 10]
    assert [c.dtype for c in grown] == [np.int64, np.bool_]
    assert grown[0][:3].tolist() == [0, 1, 2] and grown[1][:3].tolist() == [True, False, True]
    assert len(with_room(cols, 0, 5, 1024)[0]) == 1024


def test_tuning_is_passed_to_the_engine_not_patched() -> None:
    tuning = rating_core.Tuning(max_specials=1, split_rows=2, small_batch=0, watch_ms=7, step_below=3)
    with pytest.raises(FrozenInstanceError):
        tuning.watch_ms = 8  # type: ignore[misc]
    setup = rating_core.RatingSetup(
        start=datetime(2026, 1, 1, tzinfo=timezone.utc), end_ms=1000, currency="EUR",
        plans=rating_core.Plans(), tariffs=(), toll_free_tariffs=(), orgs=(),
    )
    engine = rating_core.RatingEngine(setup, tuning)
    assert engine.admission.small_batch == 0
    assert engine.calls.watch_ms == 7
    assert (engine._charger.max_specials, engine._charger.split_rows, engine._charger.step_below) == (1, 2, 3)


def test_no_test_patches_a_rating_core_global_or_calls_hypothesis_internals() -> None:
    """Tests choose the engine's tuning with a `Tuning`, and use Hypothesis' public API."""
    patched = re.compile(r"(rating_core\.\w+|\b(?:charging|admission|calls|ledger|engine))\.[A-Z_]{2,}\s*=[^=]")
    set_attr = re.compile(r"setattr\(\s*(rating_core\.\w+|charging|admission|calls|ledger|engine)\s*,\s*[\"'][A-Z_]{2,}[\"']")
    private = re.compile(r"hypothesis\.internal|\.hypothesis\.inner_test|\bfind_any\b")
    me = Path(__file__).resolve()
    for path in TESTS.rglob("*.py"):
        if path.resolve() == me:
            continue
        text = path.read_text()
        assert not patched.search(text), path
        assert not set_attr.search(text), path
        assert not private.search(text), path
