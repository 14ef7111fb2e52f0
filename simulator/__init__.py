"""callsim's simulator: scenarios in, a switch feeding the rating core (`rating_core`) in
simulated time, and the output files, report and server around it.

General layout, each floor importing only the floors below it:

- `cli`: the `callsim` command (`_cli_common` for what every command shares,
  `_cli_server` for `serve` and `loadgen`, `_cli_plan` for `plan`).
- `run` (`run_scenario`: one scenario, start to finish), `sweep` (many runs over seeds and
  settings, in memory, on Dask), `plan` (credit settings searched through sweeps) and `server` (`serve`: the rating core behind TCP); `bench`
  times them.
- `switch` (the Trio loop that drives the engine window by window), `expect` (a finished
  run checked against its `[[expect]]` tables), `report` (the HTML report), with
  `progress` and `metrics` observing a run.
- `traffic` (calls drawn from a scenario's traffic sources) and `outputs` (the files).
- `scenario`: the TOML file validated into a `Scenario`, its units and its work estimate.
- `rating_core`: the rules, with no I/O.

`clock`, `_stop_signals`, `_malloc` and `_version` are small helpers any floor may use.
Importing this package imports nothing else: `callsim --help` stays fast.
"""

__all__ = [
    "bench", "cli", "clock", "expect", "metrics", "outputs", "plan", "progress", "report", "run",
    "scenario", "server", "sweep", "switch", "traffic",
]
