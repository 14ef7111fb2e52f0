"""`python -m simulator`: the `callsim` command (simulator/_entry.py)."""

from simulator._entry import entry

entry()
