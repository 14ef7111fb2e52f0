"""`EventColumns.in_time_order`: the window's events by (time, org), each org instant's events in
the order given, however the runs came (org by org, stepped orgs, bulk recharges) and however
far apart the instants are."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import EventColumns


def _columns(t: np.ndarray, org: np.ndarray) -> EventColumns:
    """Events whose balance is their position, so that an order can be read back."""
    n = len(t)
    zero = np.zeros(n, dtype=np.int64)
    return EventColumns(t.astype(np.int64), org.astype(np.int64), zero.astype(np.int8), np.arange(n, dtype=np.int64),
                        zero, zero.astype(np.int8))


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5)), max_size=300),
       far=st.sampled_from([1, 10**6, 10**15, 10**17]))  # one key with positions; a stable sort; lexsort
def test_events_are_in_time_then_org_order_and_stable(pairs, far) -> None:
    t = np.array([p[0] * far for p in pairs], dtype=np.int64)
    org = np.array([p[1] for p in pairs], dtype=np.int64)
    ordered = _columns(t, org).in_time_order()
    assert ordered.balance.tolist() == np.lexsort((org, t)).tolist()  # lexsort is stable


def test_runs_of_a_thousand_orgs_are_merged() -> None:
    """What a window of a thousand orgs recharging at every instant looks like: each org's
    events in time order, org after org, several at one instant."""
    rng = np.random.default_rng(7)
    t = np.sort(rng.integers(0, 3_600_000, (1_000, 200)) // 7 * 7, axis=1).ravel()
    org = np.repeat(np.arange(1_000), 200)
    ordered = _columns(t, org).in_time_order()
    assert ordered.balance.tolist() == np.lexsort((org, t)).tolist()


@pytest.mark.parametrize("n", [0, 1, 2, 50])
def test_events_in_order_are_not_copied(n: int) -> None:
    events = _columns(np.arange(n) // 3, np.arange(n) % 3)
    assert events.in_time_order() is events
