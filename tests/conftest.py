"""Shared test setup.

The tests import their helpers (`reference`, `strategies`) as top-level modules; put this
directory on sys.path so that works whether or not `tests` becomes a package.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
