"""The cyclic garbage collector held off while a lot of acyclic objects are built.

Building a big structure of dicts and strings (summary.json's 10,000 orgs, a report's
decoded CDRs) makes the collector run every few hundred allocations and rescan what
is being built, and everything else the process holds: ~0.1 s for a summary of
10,000 orgs in a run's process.  None of it forms cycles, so nothing is lost.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees what dies);
    the collector is as it was afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
