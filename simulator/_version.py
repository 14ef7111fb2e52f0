"""callsim's version, read from the installed package's metadata (pyproject.toml's `version`).

One place for `callsim --version` and the `callsim_build_info` metric, so the
two never disagree.  Read on demand: importlib.metadata scans the installed
distributions (a few ms), which a `callsim run` that prints no version should not pay.
"""

from __future__ import annotations

DISTRIBUTION = "callsim"
UNKNOWN = "0+unknown"  # a source tree that was never installed (no metadata to read)


def version() -> str:
    """The installed callsim's version string, e.g. "0.1.0"; UNKNOWN when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN
