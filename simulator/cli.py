"""The `callsim` command line.

User mistakes (bad scenario, bad option) print one line per problem to
stderr and exit 2; they never show a traceback.  Exit status 1 is kept for
failed expectations (`--check`), 130 for a run stopped by Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import _server_cli

if TYPE_CHECKING:
    from ._worker_process import WorkerFailed

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A mistake in the command line, reported as one line with exit status 2."""


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected "max" or a positive number, got "{text}"') from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f'expected "max" or a positive number, got "{text}"')
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f'expected a TCP port 0-65535, got "{text}"')
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f'expected a whole number >= 0, got "{text}"')
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f'expected a number of seconds >= 0, got "{text}"')
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep it one line
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="callsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="simulate a scenario and write CDRs, events and a summary")
    run.add_argument("scenario", type=Path)
    run.add_argument("--out", type=Path, required=True, help="output directory")
    run.add_argument("--speed", type=_speed, default=None, metavar="max|N",
                     help="simulated seconds per wall second (default: max, virtual time)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar: plain progress lines every few seconds (as when "
                          "stderr is not a terminal)")
    run.add_argument("--metrics-port", type=_port, default=None, metavar="PORT",
                     help="serve Prometheus metrics on http://HOST:PORT/metrics during the run "
                          "(default: off; 0 picks a free port)")
    run.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                     help="address to serve metrics on (default: 127.0.0.1, loopback only; "
                          "0.0.0.0 for every interface)")
    run.add_argument("--metrics-max-orgs", type=_count, default=50, metavar="N",
                     help='per-org metric labels for the first N orgs of the scenario; the others '
                          'are summed under org="_other" (default: 50)')
    run.add_argument("--metrics-linger", type=_seconds, default=0.0, metavar="S",
                     help="keep serving metrics S seconds after the run, so Prometheus scrapes "
                          "the final values (default: 0; Ctrl-C ends it early)")

    run.add_argument("--check", action="store_true",
                     help="after the run, check the scenario's [[expect]] tables: exit 1 and "
                          "print every failed expectation (docs/expectations.md)")

    check = sub.add_parser("check", help="run a scenario and check its [[expect]] tables "
                                         "(exit 0: all passed, 1: some failed)")
    check.add_argument("scenario", type=Path)
    check.add_argument("--out", type=Path, default=None,
                       help="keep the run's files here (default: a temporary directory, "
                            "removed afterwards)")
    check.add_argument("--speed", type=_speed, default=None, metavar="max|N",
                       help="simulated seconds per wall second (default: max, virtual time)")
    check.add_argument("--quiet", action="store_true", help="plain progress lines, no bar")

    val = sub.add_parser("validate", help="check a scenario file and exit")
    val.add_argument("scenario", type=Path)

    report = sub.add_parser("report", help="turn a finished run's files into an HTML report with "
                                           "charts (docs/report.md)")
    report.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the --out directory of a run")
    report.add_argument("--output", type=Path, default=None, metavar="FILE.html",
                        help="where to write the page (default: OUT_DIR/report.html); the PNGs "
                             "go in a folder named after it (OUT_DIR/report/)")

    bench = sub.add_parser("bench", help="measure rating-core and end-to-end throughput")
    bench.add_argument("--calls", type=int, default=1_000_000, help="due increments in the core batch")
    bench.add_argument("--orgs", type=int, default=1_000)
    bench.add_argument("--scenario", type=Path, default=None,
                       help="end-to-end scenario (default: the bundled enterprise_month.toml)")
    bench.add_argument("--skip-e2e", action="store_true")
    _server_cli.add_parsers(sub)  # serve, loadgen
    return parser


def entry() -> NoReturn:
    """The `callsim` command: `main`; on success `exit_now`, otherwise a normal exit."""
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before `main` handles it: parsing arguments, importing
        print("callsim: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    finally:  # the command is over: a late Ctrl-C or SIGTERM must not break off the exit
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, signal.SIG_IGN)
    if code == EXIT_OK:
        exit_now(code)
    sys.exit(code)  # a failed or interrupted command may have files open: let teardown flush them


def exit_now(code: int) -> NoReturn:
    """Flush stdout and stderr and end the process without the interpreter's teardown.

    Only after a command that succeeded: every file it wrote is closed by then,
    and what the teardown would do is free numpy arrays and a big scenario's
    objects one by one, ~0.3 s after a month run that a user timing
    `callsim run` would wait out for nothing.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # `callsim ... | head`, or a closed stream
            pass
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    # Before numpy is imported: callsim does no linear algebra, and OpenBLAS's thread pool
    # (one thread here) would only cost start-up CPU and keep `callsim run` from forking its
    # file workers (`_worker_process.forkable`).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = build_parser().parse_args(argv)
    with _stop_signals(args) as args.stop_signals:
        return _command(args)


def _stop_signals(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """`run` and `check`: from here on Ctrl-C and SIGTERM stop the run with its files complete,
    whatever it is doing (simulator/_stop_signals.py); other commands keep Python's Ctrl-C."""
    if args.command not in ("run", "check"):
        return contextlib.nullcontext()
    from ._stop_signals import StopSignals

    return StopSignals.installed()


def _command(args: argparse.Namespace) -> int:
    from .scenario import ScenarioError

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
            return _server_cli.main(args, UsageError)
        if args.command == "report":
            from . import report

            return report.main(args, UsageError)
    except ScenarioError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as err:
        print(f"callsim: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("callsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def _validate(args: argparse.Namespace) -> int:
    from .scenario import load_scenario

    scenario = load_scenario(args.scenario)
    setup = scenario.setup
    users = sum(len(o.users) for o in setup.orgs)
    print(f"{args.scenario}: ok ({len(setup.orgs)} orgs, {users} users, "
          f"{len(scenario.traffic)} traffic sources, {len(scenario.calls)} calls)")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from ._malloc import keep_freed_memory
    from ._cdr_workers import CdrWorkers
    from .scenario import load_scenario

    keep_freed_memory()

    scenario = load_scenario(args.scenario)
    if args.check and not scenario.expect_raw:
        raise UsageError(f"{args.scenario}: no [[expect]] tables, nothing to check")
    _check_out_dir(args.out)
    # Started before the imports below, so that they start up beside them (see _cdr_workers).
    workers = CdrWorkers.for_scenario(scenario, fork=True)
    try:
        import trio

        from .progress import Progress
        from .run import RunOptions, run_scenario

        progress = Progress(scenario, quiet=args.quiet)
        options = RunOptions(out_dir=args.out, speed=args.speed, observers=[progress.observe],
                             cdr_workers=workers, signals=args.stop_signals)
        _serve_metrics(args, options)
        started = time.perf_counter()
        with progress:
            result = trio.run(run_scenario, scenario, options)
    except Exception as err:
        failure = _write_failure(err)
        if failure is None:
            raise
        if workers is not None:
            with contextlib.suppress(OSError, RuntimeError):  # the error to report is `failure`
                workers.close()
        from ._worker_process import write_error_text

        print(f"callsim: cannot write the outputs to {args.out}/: {write_error_text(failure)}; "
              "the files there are incomplete", file=sys.stderr)
        return EXIT_CHECK_FAILED
    finally:
        if workers is not None:
            workers.close()  # a run that ended normally has closed them already
    signals = args.stop_signals
    signals.raise_next()  # every file is complete: what is left may stop anywhere
    progress.print_summary(result, time.perf_counter() - started)
    if signals.received is not None:
        _stop_metrics(options)
        print(f"callsim: stopped by {signals.received.name} at simulated "
              f"{result.summary['simulated_until']}; the files in {args.out}/ are complete up to "
              f"that instant (summary.json: \"complete\": {str(result.complete).lower()})",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    _linger_and_stop_metrics(args, options)
    if result.complete and args.check:
        from .expect import check_run, format_report

        report = check_run(scenario, args.out)
        print("\n" + format_report(report), end="", flush=True)
        return EXIT_OK if report.passed else EXIT_CHECK_FAILED
    return EXIT_OK if result.complete else EXIT_INTERRUPTED


def _check(args: argparse.Namespace) -> int:
    """`callsim check`: `callsim run --check`, into a temporary directory unless --out."""
    import tempfile

    def run_into(out: str) -> int:
        argv = ["run", "--check", "--speed", str(args.speed or "max"), "--out", out]
        argv += ["--quiet"] if args.quiet else []
        run_args = build_parser().parse_args([*argv, "--", str(args.scenario)])
        run_args.stop_signals = args.stop_signals
        return _run(run_args)

    if args.out is not None:
        return run_into(str(args.out))
    with tempfile.TemporaryDirectory(prefix="callsim-check-") as out:
        return run_into(out)


def _write_failure(err: BaseException) -> "OSError | WorkerFailed | None":
    """The error that stopped a run's writing, if it was one (disk full, a file that cannot be
    created, a CDR file worker killed): raised as is, or from inside the run's task groups."""
    from ._worker_process import WorkerFailed

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


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot create directory ({err.strerror})") from None


if __name__ == "__main__":
    entry()
