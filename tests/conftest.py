"""Shared test setup: `tests` is a package, so every test imports its helpers by name
(`tests.scenarios`, `..reference`, `..strategies`); nothing here touches sys.path.

Under CI (the CI variable set, as `.ci/run` runs) Hypothesis draws the same examples every
time, derived from each test's name, so that a red CI is the change's and never a new draw's;
runs elsewhere draw new examples, which is how the fuzz and differential tests keep finding
what they find (a failure prints the blob that replays it).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
