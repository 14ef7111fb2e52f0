"""Shared test setup.

The rating core's tests import their helpers (`reference`, `strategies`) as top-level
modules, so this directory goes on sys.path.  The simulator's tests need no such thing:
`tests` is a package, and they import `tests.scenarios` and their neighbours by name.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
