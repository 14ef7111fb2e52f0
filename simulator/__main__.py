"""`python -m simulator`: the `callsim` command (simulator/_entry.py)."""

from simulator._entry import entry

if __name__ == "__main__":  # not when a spawned file worker re-imports the main module
    entry()
