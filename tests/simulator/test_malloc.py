"""`keep_freed_memory`: freed big arrays are reused, not returned to the kernel and faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simulator._malloc import _glibc

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


TRIM_PROGRAM = """
import re
from pathlib import Path
from simulator._malloc import keep_freed_memory, return_freed_memory

def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) // 1024

assert keep_freed_memory()  # freed blocks stay in the heap, as in `callsim serve`
blocks = [b"x" * (1 << 20) for _ in range(300)]  # connection buffers of a load
last = blocks.pop()  # the heap's top stays in use: only pages inside it can go back
del blocks
kept = rss_mb()
assert return_freed_memory()
print(kept - rss_mb())
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc")
def test_return_freed_memory_gives_back_what_keep_freed_memory_kept():
    out = subprocess.run([sys.executable, "-c", TRIM_PROGRAM], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 200  # of the ~300 MB freed
