"""The `callsim` command line.

User mistakes (bad scenario, bad option) print one line per problem to
stderr and exit 2; they never show a traceback.  Exit status 1 is kept for
failed expectations (`--check`), 130 for a run stopped by Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import _cli_import, _cli_plan, _cli_server, _cli_sweep
from ._cli_common import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_force_argument,
    epilog,
    exit_now,  # simulator._entry ends a finished command with cli.exit_now
    load_checked,
    path,
    port,
    seconds,
    whole_number,
)

if TYPE_CHECKING:
    from .outputs import OutDir, WorkerFailed
    from .expect import CheckResult
    from .scenario import Scenario
    from ._stop_signals import StopSignals

DESCRIPTION = ("A telephony call-rating and switch simulator: pooled minutes, communications credits,\n"
               "auto-recharge, exact CDRs.")


#: The fastest finite --speed: a month in ~2.6 wall seconds, past which `max` is as fast and
#: the switch's window arithmetic (ms of simulated time per 10 ms tick) would overflow.
MAX_SPEED = 1e6
#: Per-org metric labels: more than any scenario's orgs (2,000,000 users in all) is pointless.
MAX_METRICS_ORGS = 1_000_000
#: `bench --calls`: ~100 bytes of arrays per call, so 50 M stays within a few GB.
MAX_BENCH_CALLS = 50_000_000
MAX_BENCH_ORGS = 1_000_000


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f'expected "max" or a number > 0 and <= {MAX_SPEED:,.0f}, '
                                         f'got "{text}"')
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep it one line
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


class _TopParser(_Parser):
    """`callsim` itself: its help names the version (read only when the help is printed)."""

    def format_help(self) -> str:
        from ._version import version

        return f"callsim {version()}\n\n{super().format_help()}"


class _Version(argparse.Action):
    """`--version`: `callsim X.Y.Z` from the installed package's metadata, then exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print callsim's version and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
        from ._version import version

        print(f"callsim {version()}")  # on stdout, as argparse's own "version" action
        parser.exit(EXIT_OK)


_RUN_EXITS = (
    (EXIT_OK, "the run is complete (with --check: every expectation passed)"),
    (EXIT_CHECK_FAILED, "the outputs could not be written (disk full, a file worker killed), "
                        "or with --check: an expectation failed"),
    EXIT_BAD_INPUT,
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C, SIGTERM): every file is complete up to where the run "
                       "stopped, summary.json says \"complete\": false"),
)
_QUIET_HELP = ("no progress and no summary: print only errors, warnings and failed expectations "
               "(for plain progress lines instead of the bar, redirect stderr: 2> run.log)")
_SEED_HELP = ("the seed of the random traffic, instead of the scenario's [simulation] seed "
              "(summary.json records the one used); same scenario and seed, same files")
_JSON_HELP = ("print the summary as one JSON document on stdout (summary.json's content; with "
              "--check, {\"summary\": ..., \"check\": ...}) and nothing else there")
_MSGPACK_HELP = ("write cdrs.msgpack beside cdrs.csv (default: yes); --no-cdr-msgpack skips it and "
                 "its file worker (docs/outputs.md)")


_FORMAT_HELP = ("teams: also write the CDRs as the Teams admin center's PSTN usage export, "
                "PSTN.calls.<scenario name>.csv, for spreadsheets built on it and `callsim import` "
                "(default: callsim, cdrs.csv only; cdrs.csv is always written; docs/outputs.md)")
_SET_HELP = ("replace a value of the scenario by its dotted path before it is checked, e.g. "
             "orgs.contoso.credits.initial=50.00 or traffic[0].calls_per_hour=300 (repeatable; "
             "as `callsim sweep --set` with one value, docs/sweep.md)")


def _seed(text: str) -> int:
    if not text.isdigit() or int(text) > 2**63 - 1:
        raise argparse.ArgumentTypeError(f'expected a whole number 0 to 2**63-1, got "{text}"')
    return int(text)


def _add_run_options(command: argparse.ArgumentParser) -> None:
    """The options `run` and `check` share (check runs `run --check`)."""
    command.add_argument("scenario", type=Path, metavar="SCENARIO", help="the scenario file (.toml)")
    command.add_argument("--speed", type=_speed, default=None, metavar="max|N",
                         help="simulated seconds per wall second, at most 1e6 (default: max, virtual time)")
    command.add_argument("--seed", type=_seed, default=None, metavar="N", help=_SEED_HELP)
    command.add_argument("--quiet", action="store_true", help=_QUIET_HELP)
    command.add_argument("--json", action="store_true", help=_JSON_HELP)
    command.add_argument("--cdr-msgpack", action=argparse.BooleanOptionalAction, default=True,
                         help=_MSGPACK_HELP)
    command.add_argument("--cdr-format", choices=("callsim", "teams"), default="callsim", help=_FORMAT_HELP)
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                         help=_SET_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _TopParser(
        prog="callsim", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog(["callsim run scenarios/quickstart.toml --out out/quickstart",
                       "callsim validate my_scenario.toml",
                       "callsim run --help        (every command has its own --help)"],
                      [(EXIT_OK, "success"),
                       (EXIT_CHECK_FAILED, "failed expectations, or outputs that could not be written"),
                       (EXIT_USAGE, "bad input: a scenario, an option, or no command"),
                       (EXIT_INTERRUPTED, "interrupted (Ctrl-C, SIGTERM)")]))
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, examples: Sequence[str], exits: Sequence[tuple[int, str]]):
        return sub.add_parser(name, help=help, description=help, epilog=epilog(examples, exits),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    run = command("run", "simulate a scenario and write CDRs, events and a summary",
                  ["callsim run scenarios/quickstart.toml --out out/quickstart",
                   "callsim run my_scenario.toml --out out/mine --seed 7 --no-cdr-msgpack --quiet",
                   "callsim run my_scenario.toml --out out/live --speed 600 --metrics-port 9464"],
                  _RUN_EXITS)
    _add_run_options(run)
    run.add_argument("--out", type=path, required=True, metavar="DIR",
                     help="output directory: cdrs.csv, cdrs.msgpack, events.jsonl, summary.json")
    run.add_argument("--metrics-port", type=port, default=None, metavar="PORT",
                     help="serve Prometheus metrics on http://HOST:PORT/metrics during the run "
                          "(default: off; 0 picks a free port)")
    run.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                     help="address to serve metrics on (default: 127.0.0.1, loopback only; "
                          "0.0.0.0 for every interface)")
    run.add_argument("--metrics-max-orgs", type=whole_number(0, MAX_METRICS_ORGS), default=50, metavar="N",
                     help='per-org metric labels for the first N orgs of the scenario; the others '
                          'are summed under org="_other" (default: 50)')
    run.add_argument("--metrics-linger", type=seconds, default=0.0, metavar="S",
                     help="keep serving metrics S seconds after the run, so Prometheus scrapes "
                          "the final values (default: 0, at most 86400; Ctrl-C ends it early)")

    run.add_argument("--check", action="store_true",
                     help="after the run, check the scenario's [[expect]] tables: exit 1 and "
                          "print every failed expectation (docs/expectations.md)")

    check = command("check", "run a scenario and check its [[expect]] tables (docs/expectations.md)",
                    ["callsim check scenarios/quickstart.toml",
                     "callsim check scenarios/enterprise_month.toml --out out/month --quiet",
                     "callsim check my_scenario.toml --json > verdict.json"],
                    [(EXIT_OK, "every expectation passed"),
                     (EXIT_CHECK_FAILED, "an expectation failed (each is printed), or the outputs "
                                         "could not be written"),
                     (EXIT_USAGE, "bad input: the scenario, an option, or no [[expect]] tables"),
                     _RUN_EXITS[3]])
    _add_run_options(check)
    check.add_argument("--out", type=path, default=None, metavar="DIR",
                       help="keep the run's files here (default: a temporary directory, "
                            "removed afterwards)")

    val = command("validate", "check a scenario file without running it",
                  ["callsim validate scenarios/quickstart.toml",
                   "callsim validate my_scenario.toml --json"],
                  [(EXIT_OK, "the scenario is valid (one line with its counts, one with the work estimate)"), EXIT_BAD_INPUT])
    val.add_argument("scenario", type=Path, metavar="SCENARIO", help="the scenario file (.toml)")
    val.add_argument("--json", action="store_true",
                     help="print the counts as one JSON document on stdout (problems still go to "
                          "stderr, one a line)")
    for command_parser in (run, check, val):
        add_force_argument(command_parser)

    report = command("report", "turn a finished run's files into an HTML report with charts "
                               "(docs/report.md)",
                     ["callsim report out/quickstart",
                      "callsim report out/month --output /tmp/month.html"],
                     [(EXIT_OK, "the report is written (its path is printed)"),
                      (EXIT_USAGE, "OUT_DIR is not a finished run's directory, or the page "
                                   "cannot be written")])
    report.add_argument("out_dir", type=path, metavar="OUT_DIR", help="the --out directory of a run")
    report.add_argument("--output", type=path, default=None, metavar="FILE.html",
                        help="where to write the page (default: OUT_DIR/report.html); the PNGs "
                             "go in a folder named after it (OUT_DIR/report/)")

    bench = command("bench", "measure rating-core and end-to-end throughput",
                    ["callsim bench",
                     "callsim bench --skip-e2e --calls 200000",
                     "callsim bench --scenario my_scenario.toml"],
                    [(EXIT_OK, "the figures are printed"), EXIT_BAD_INPUT])
    bench.add_argument("--calls", type=whole_number(1, MAX_BENCH_CALLS), default=1_000_000,
                       metavar="N", help="due increments in the rating core's batch (default: "
                                         "1000000, at most 50000000)")
    bench.add_argument("--orgs", type=whole_number(1, MAX_BENCH_ORGS), default=1_000, metavar="N",
                       help="orgs the core batch's calls are spread over (default: 1000, at "
                            "most 1000000)")
    bench.add_argument("--scenario", type=Path, default=None, metavar="SCENARIO",
                       help="end-to-end scenario (default: the bundled enterprise_month.toml)")
    bench.add_argument("--skip-e2e", action="store_true",
                       help="only the rating core and the reference: no end-to-end runs (the "
                            "stress rows included)")
    bench.add_argument("--skip-stress", action="store_true",
                       help="leave out the stress rows (busy recharges, mixed orgs, 10,000 orgs)")
    _cli_server.add_parsers(command)  # serve, loadgen
    _cli_import.add_parser(command)
    _cli_sweep.add_parser(command)
    _cli_plan.add_parsers(command)  # plan
    return parser


def main(argv: Sequence[str] | None = None, stops: "StopSignals | None" = None) -> int:
    """Run one command; return its exit status (argparse exits 2 itself on a bad option).

    `stops`: the StopSignals the entry point installed before importing anything
    (simulator/_entry.py).  `run` and `check` keep them, so a signal that came while callsim
    started stops the run at its first window; other commands hand both signals back to
    Python (a signal that came already raises KeyboardInterrupt).  Without them, `run` and
    `check` install their own.
    """
    # Before numpy is imported: callsim does no linear algebra, and OpenBLAS's thread pool
    # (one thread here) would only cost start-up CPU and keep `callsim run` from forking its
    # file workers (`_worker_process.forkable`).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(_cli_import.join_negative_offsets(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:  # as argparse does for a missing required argument: usage, exit 2
        print(parser.format_help(), end="", file=sys.stderr)
        return EXIT_USAGE
    with _stop_signals(args, stops) as args.stop_signals:
        return _command(args)


def _stop_signals(args: argparse.Namespace,
                  stops: "StopSignals | None") -> contextlib.AbstractContextManager:
    """`run` and `check`: from here on Ctrl-C and SIGTERM stop the run with its files complete,
    whatever it is doing (simulator/_stop_signals.py); other commands keep Python's Ctrl-C."""
    if args.command not in ("run", "check"):
        if stops is not None:
            stops.hand_back()
        return contextlib.nullcontext()
    if stops is not None:
        return contextlib.nullcontext(stops)
    from ._stop_signals import StopSignals

    return StopSignals.installed()


def _command(args: argparse.Namespace) -> int:
    from .scenario import ScenarioError
    from .outputs import RunNotFinished

    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "run":
            return _run(args)
        if args.command == "check":
            return _check(args)
        if args.command == "bench":
            from .bench import run_bench

            return run_bench(args)
        if args.command in ("serve", "loadgen"):
            return _cli_server.main(args)
        if args.command == "import":
            return _cli_import.main(args)
        if args.command == "sweep":
            return _cli_sweep.main(args)
        if args.command == "plan":
            return _cli_plan.main(args)
        if args.command == "report":
            from . import report

            return report.main(args, UsageError)
    except ScenarioError as err:
        for problem in err.problems:  # a problem of the command line (--set) has no file
            print(problem.located() if problem.file else f"callsim: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, RunNotFinished) as err:
        print(f"callsim: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("callsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def _validate(args: argparse.Namespace) -> int:
    from .scenario.estimate import estimate

    scenario = load_checked(args.scenario, args.force)
    for clash in token_variable_clashes(scenario):
        print(f"warning: {args.scenario}: {clash}", file=sys.stderr)
    counts = scenario_counts(scenario)
    work = estimate(scenario.workload) if scenario.workload is not None else None
    if args.json:
        extra = {"estimate": dataclasses.asdict(work)} if work is not None else {}
        print(json.dumps({"scenario": str(args.scenario), "ok": True, **counts, **extra}, indent=2))
    else:
        print(f"{args.scenario}: ok ({counts['orgs']} orgs, {counts['users']} users, "
              f"{counts['traffic_sources']} traffic sources, {counts['calls']} calls)")
        if work is not None:
            print(f"  estimate: {work.describe()}")
    return EXIT_OK


def scenario_counts(scenario: "Scenario") -> dict[str, int]:
    """What `validate` reports of a valid scenario: orgs, users, traffic sources, explicit calls."""
    setup = scenario.setup
    return {"orgs": len(setup.orgs), "users": sum(len(o.users) for o in setup.orgs),
            "traffic_sources": len(scenario.traffic), "calls": len(scenario.calls)}

def token_variable_clashes(scenario: "Scenario") -> list[str]:
    """Pairs of orgs whose ids map to one token variable (`acme-eu`, `acme_eu`), one sentence
    each: a run does not log in, so the file is valid, but `callsim serve` refuses it."""
    from .server import token_env_var

    owner: dict[str, str] = {}
    clashes = []
    for org in scenario.setup.orgs:
        var = token_env_var(org.id)
        first = owner.setdefault(var, org.id)
        if first != org.id:
            clashes.append(f'orgs "{first}" and "{org.id}" both take their token from {var}: '
                           "callsim serve refuses the file until one is renamed")
    return clashes


def _run(args: argparse.Namespace) -> int:
    from ._malloc import keep_freed_memory

    keep_freed_memory()

    if args.seed is not None and any(a.partition("=")[0].strip() == "simulation.seed" for a in args.overrides):
        raise UsageError("--seed and --set simulation.seed both give the run's seed: use one")
    scenario = load_checked(args.scenario, args.force, args.out, edit=_overrides(args.overrides))
    if args.seed is not None:
        scenario = dataclasses.replace(scenario, seed=args.seed)
    if args.check and not scenario.expectations:
        raise UsageError(f"{args.scenario}: no [[expect]] tables, nothing to check")
    with _check_out_dir(args.out) as claim:  # the directory is this run's until it returns
        return _run_owned(args, scenario, claim)


def _overrides(arguments: Sequence[str]):
    """`run --set KEY=VALUE`...: the scenario edit they make (None without any)."""
    if not arguments:
        return None
    from .sweep import OverrideEdit, parse_set

    overrides = []
    for argument in arguments:
        try:
            values = parse_set(argument)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if len(values) > 1:
            raise UsageError(f"--set {argument}: one value per --set for a run (a sweep takes several)")
        overrides += values
    return OverrideEdit(overrides)


def _run_owned(args: argparse.Namespace, scenario: "Scenario", claim: "OutDir") -> int:
    """`callsim run` once the --out directory is this run's (`claim`, see simulator/outputs/_out_dir.py)."""
    from .run import start_cdr_workers

    # The scenario lives as long as the process: out of the collector's full passes, which the
    # run's setup would otherwise trigger over every object of a file of 10,000 orgs (~70 ms).
    gc.freeze()
    # Before trio's event loop or any thread: the children are forked (outputs/_cdr_workers.py).
    workers = start_cdr_workers(scenario, fork=True, msgpack=args.cdr_msgpack,
                                teams_export=args.cdr_format == "teams")
    try:
        import trio

        from ._stop_signals import unwake_at_exit
        from .progress import Progress
        from .run import RunOptions, run_scenario

        progress = Progress(scenario, quiet=args.quiet)
        options = RunOptions(out_dir=args.out, speed=args.speed, observers=[progress.observe],
                             cdr_workers=workers, write_msgpack=args.cdr_msgpack,
                             teams_export=args.cdr_format == "teams",
                             signals=args.stop_signals)
        _serve_metrics(args, options)
        options.out_dir_claim = claim  # held by `_run` until it returns, --check included
        started = time.perf_counter()
        with progress:
            result = trio.run(unwake_at_exit, run_scenario, scenario, options)
    except Exception as err:
        failure = _write_failure(err)
        if failure is None:
            raise
        if workers is not None:
            with contextlib.suppress(OSError, RuntimeError):  # the error to report is `failure`
                workers.close()
        from .outputs import write_error_text

        print(f"callsim: cannot write the outputs to {args.out}/: {write_error_text(failure)}; "
              "the files there are incomplete", file=sys.stderr)
        return EXIT_CHECK_FAILED
    finally:
        if workers is not None:
            workers.close()  # a run that ended normally has closed them already
    signals = args.stop_signals
    signals.raise_next()  # every file is complete: what is left may stop anywhere
    if not (args.quiet or args.json):
        progress.print_summary(result, time.perf_counter() - started)
    if signals.received is not None:
        _stop_metrics(options)
        print(f"callsim: stopped by {signals.received.name} at simulated "
              f"{result.summary['simulated_until']}; the files in {args.out}/ are complete up to "
              f"that instant (summary.json: \"complete\": {str(result.complete).lower()})",
              file=sys.stderr, flush=True)
        if args.json:  # the partial summary, as summary.json has it
            print(json.dumps(result.summary if not args.check else _check_document(result.summary, None),
                             indent=2, ensure_ascii=False))
        return EXIT_INTERRUPTED
    _linger_and_stop_metrics(args, options)
    report = None
    if result.complete and args.check:
        from .expect import check_run, format_report

        report = check_run(scenario, args.out)
        if not args.json and not (args.quiet and report.passed):
            print(("" if args.quiet else "\n") + format_report(report), end="", flush=True)
    if args.json:
        print(json.dumps(result.summary if not args.check else _check_document(result.summary, report),
                         indent=2, ensure_ascii=False))
    if report is not None:
        return EXIT_OK if report.passed else EXIT_CHECK_FAILED
    return EXIT_OK if result.complete else EXIT_INTERRUPTED


def _check_document(summary: dict, report: "CheckResult | None") -> dict:
    """`--check --json`: the summary and the verdict (None: the run was interrupted, no check)."""
    if report is None:
        return {"summary": summary, "check": None}
    check = {"passed": report.passed, **dataclasses.asdict(report)}
    return {"summary": summary, "check": check}


def _check(args: argparse.Namespace) -> int:
    """`callsim check`: `callsim run --check`, into a temporary directory unless --out."""
    import tempfile

    def run_into(out: str) -> int:
        run_args = build_parser().parse_args(["run", "--check", "--out", out, "--", str(args.scenario)])
        for name, value in vars(args).items():  # the options check shares with run (_add_run_options)
            if name not in ("command", "out"):
                setattr(run_args, name, value)
        return _run(run_args)

    if args.out is not None:
        return run_into(str(args.out))
    with tempfile.TemporaryDirectory(prefix="callsim-check-") as out:
        return run_into(out)


def _write_failure(err: BaseException) -> "OSError | WorkerFailed | None":
    """The error that stopped a run's writing, if it was one (disk full, a file that cannot be
    created, a CDR file worker killed): raised as is, or from inside the run's task groups."""
    from .outputs import WorkerFailed

    if isinstance(err, OSError | WorkerFailed):
        return err
    if isinstance(err, BaseExceptionGroup):
        for inner in err.exceptions:
            if (found := _write_failure(inner)) is not None:
                return found
    return None


def _serve_metrics(args: argparse.Namespace, options) -> None:
    """--metrics-port: start the /metrics endpoint before the run (options.metrics)."""
    if args.metrics_port is None:
        if args.metrics_linger:
            raise UsageError("--metrics-linger needs --metrics-port")
        return
    from .metrics import MetricsServer

    try:
        options.metrics = MetricsServer(args.metrics_host, args.metrics_port)
    except OSError as err:
        raise UsageError(f"--metrics-port {args.metrics_port}: cannot listen on "
                         f"{args.metrics_host} ({err.strerror or err})") from None
    options.metrics_max_orgs = args.metrics_max_orgs
    print(f"callsim: metrics at {options.metrics.url}", file=sys.stderr, flush=True)


def _linger_and_stop_metrics(args: argparse.Namespace, options) -> None:
    """--metrics-linger: the run is over and its files are written; serve a while, then stop."""
    if options.metrics is None:
        return
    try:
        if args.metrics_linger > 0:
            if not args.quiet:
                print(f"callsim: serving the final metrics for {args.metrics_linger:g} s "
                      "(Ctrl-C to stop)", file=sys.stderr, flush=True)
            time.sleep(args.metrics_linger)
    except KeyboardInterrupt:
        pass  # the run is complete: stopping the linger early is not an interruption
    finally:
        options.metrics.close()


def _stop_metrics(options) -> None:
    if options.metrics is not None:
        options.metrics.close()


def _check_out_dir(out: Path) -> "OutDir":
    """Claim --out for this run (simulator/outputs/_out_dir.py); a problem is a UsageError."""
    from .outputs import claim_for_command

    return claim_for_command(out, UsageError)


if __name__ == "__main__":  # `python -m simulator.cli`: the `callsim` command, this module as is
    from simulator._entry import entry

    entry(sys.modules[__name__])
