"""The call table's watch: the rows a short window looks at instead of the whole table.

Invariant (rating_core/_calls.py): while a watch is kept, every live row due before
`watch_until` (next boundary or hang-up) is in it.  A row missing from it would be an
increment never paid or a hang-up never ended, so the operations the engine performs are
driven at random here and the invariant is checked after each one, against brute force.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core._calls import COLUMNS, CallTable

WATCH_MS = 1_000
T = st.integers(0, 5_000)


def rows_due_at(table: CallTable, next_ms: list[int], hangup_ms: list[int]) -> dict:
    m = len(next_ms)
    rows = {k: np.zeros(m, dtype=t) for k, t in COLUMNS.items()}
    rows["call_id"] = np.arange(table.n, table.n + m) + 1
    rows["next_ms"] = np.array(next_ms, dtype=np.int64)
    rows["hangup_ms"] = np.array(hangup_ms, dtype=np.int64)
    rows["alive"] = np.ones(m, dtype=bool)
    return rows


def must_watch(table: CallTable) -> set[int]:
    due = np.minimum(table.view("next_ms"), table.view("hangup_ms"))
    return set(np.flatnonzero(table.view("alive") & (due < table.watch_until)).tolist())


operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.lists(st.tuples(T, T), max_size=6)),
    st.tuples(st.just("rewatch"), T),
    st.tuples(st.just("charge"), st.integers(0, 10**6), T),  # pay due rows: boundaries move later
    # hang-ups brought forward, several rows at once as a tick tells them (repeats included)
    st.tuples(st.just("hangup"), st.lists(st.integers(0, 10**6), min_size=1, max_size=5), T),
    st.tuples(st.just("end"), st.integers(0, 10**6)),
    st.tuples(st.just("compact")),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_watch_holds_every_row_due_before_its_horizon(ops):
    table = CallTable(watch_ms=WATCH_MS)
    for op in ops:
        _apply(table, op)
        if table.watch_until >= 0:
            candidates = table.due_candidates(table.watch_until)
            assert candidates is not None
            assert must_watch(table) <= set(candidates.tolist()), op
            assert list(candidates) == sorted(set(candidates.tolist()))  # sorted, no repeats
            assert table.due_candidates(table.watch_until + 1) is None
            due = np.minimum(table.view("next_ms"), table.view("hangup_ms"))
            truth = int(due.min(where=table.view("alive"), initial=2**62))
            bound = table.next_due_bound()
            assert bound <= truth and (bound == truth or bound == table.watch_until)


def _apply(table: CallTable, op: tuple) -> None:
    kind = op[0]
    if kind == "append":
        if op[1]:
            table.append(rows_due_at(table, *map(list, zip(*op[1]))))
    elif kind == "rewatch":
        table.rewatch(op[1])
    elif kind == "compact":
        table.compact()
    elif kind == "hangup" and table.n:
        rows = [r % table.n for r in op[1]]
        for row in rows:
            table.col["hangup_ms"][row] = min(int(table.col["hangup_ms"][row]), op[2])
        table.watch(np.array(rows))
    elif table.n:
        row = op[1] % table.n
        if kind == "charge":  # what a window does to a row it paid, then prunes
            table.col["next_ms"][row] = max(int(table.col["next_ms"][row]), op[2])
            table.prune_watch()
        elif kind == "end" and table.col["alive"][row]:
            table.end(np.array([row]))
