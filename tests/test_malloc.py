"""`keep_freed_memory`: freed big arrays are reused, not returned to the kernel and faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import resource, sys
import numpy as np
from simulator._malloc import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
def window():  # a 40 MB temporary: above glibc's largest default mmap threshold (32 MB)
    np.ones(40 << 20, dtype=np.uint8).sum()
window()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    window()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    default, tuned = page_faults("default"), page_faults("tuned")
    # by default each window faults its 40 MB in again: at least once per 2 MB (huge) page
    assert default >= 5 * 20
    assert tuned < default // 20
