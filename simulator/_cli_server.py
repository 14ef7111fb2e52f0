"""The `callsim serve` and `callsim loadgen` subcommands: their options and their glue.

Kept out of cli.py so that file only gains two lines, and so that nothing
network-related (trio, msgpack) is imported until one of these commands runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ._cli_common import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    UsageError,
    add_force_argument,
    count,
    load_checked,
    path,
    port,
    seconds,
)
from ._malloc import keep_freed_memory

SWITCH_INTERVAL_S = 0.0005  # `callsim serve`: longest GIL hold by one thread when another waits
DEFAULT_MAX_CONNECTIONS = 10_000
FD_RESERVE = 64  # descriptors kept for everything but client connections


def add_parsers(command: Callable[..., argparse.ArgumentParser]) -> None:
    """`serve` and `loadgen`, made by cli.py's `command(name, help, examples, exits)`."""
    serve = command("serve", "run the rating core as a TCP server (docs/server.md)",
                    ["callsim serve scenarios/server_demo.toml",
                     "callsim serve scenarios/server_demo.toml --port 7070 --metrics-port 9464",
                     "callsim serve my_scenario.toml --sip 0.0.0.0:5060 --out /var/lib/callsim/run1"],
                    [(EXIT_OK, "stopped by Ctrl-C or SIGTERM; every file is complete"),
                     (EXIT_CHECK_FAILED, "the outputs could not be written"),
                     (EXIT_BAD_INPUT[0], "bad input: the scenario, an option, or the address "
                                         "cannot be listened on")])
    serve.add_argument("scenario", type=Path,
                       help="orgs, users, tariffs, plans and credits; traffic and calls are ignored")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=port, default=7060, help="TCP port (default: 7060; 0: any free port)")
    serve.add_argument("--metrics-port", type=port, default=None, metavar="PORT",
                       help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off)")
    serve.add_argument("--out", type=path, default=None, metavar="DIR",
                       help="where cdrs.csv, events.jsonl and summary.json go "
                            "(default: ./serve-<scenario name>)")
    serve.add_argument("--max-frame", type=count, default=1 << 20, metavar="BYTES",
                       help="largest frame payload a client may send (default: 1048576)")
    serve.add_argument("--idle-timeout", type=seconds, default=120.0, metavar="S",
                       help="close a connection that sends no message for S seconds (default: 120)")
    serve.add_argument("--max-inflight", type=count, default=10_000, metavar="N",
                       help="setups one connection may have awaiting an answer (default: 10000)")
    serve.add_argument("--max-calls", type=count, default=100_000, metavar="N",
                       help="calls one connection may have in progress (default: 100000)")
    serve.add_argument("--max-connections", type=count, default=None, metavar="N",
                       help="connections open at once; more are refused (default: 10000, fewer if the "
                            "open-files limit is lower)")
    serve.add_argument("--max-output-buffer", type=count, default=8 << 20, metavar="BYTES",
                       help="replies waiting for one client: past half, its requests wait until it "
                            "reads; past all, it is disconnected and its calls hung up (default: 8388608)")
    serve.add_argument("--max-buffered-bytes", type=count, default=None, metavar="BYTES",
                       help="unread replies and partly received frames of all connections together: "
                            "past half, the connections holding the most are not read; past all, the "
                            "biggest are disconnected and their calls hung up (default: a quarter of "
                            "the memory available at start, printed; at least twice --max-frame plus "
                            "--max-output-buffer)")
    serve.add_argument("--login-timeout", type=seconds, default=10.0, metavar="S",
                       help="close a connection that has not logged in after S seconds (default: 10)")
    serve.add_argument("--sip", nargs="?", const="127.0.0.1:5060", default=None, metavar="[HOST:]PORT",
                       help="also answer SIP calls on UDP and TCP at HOST:PORT (default host 127.0.0.1; "
                            "`--sip` alone: 127.0.0.1:5060; port 0: any free port); docs/sip.md")
    serve.add_argument("--sip-only", action="store_true",
                       help="SIP only: no msgpack listener (--port and its limits are then unused)")
    serve.add_argument("--sip-ring", type=seconds, default=0.0, metavar="S",
                       help="send 180 Ringing and answer SIP calls S seconds later (default: 0, at once; "
                            "a caller's X-Callsim-Ring header, in ms, overrides it)")
    serve.add_argument("--sip-digest", default="MD5,SHA-256", metavar="ALGORITHMS",
                       help="digest algorithms offered in a 407, in this order (a client takes the first "
                            "it supports): MD5 and SHA-256 (default: MD5,SHA-256, as SIPp 3.6 knows "
                            "only MD5; SHA-256,MD5 prefers the stronger)")
    serve.add_argument("--sip-t1", type=count, default=500, metavar="MS",
                       help="SIP timer T1 in ms: retransmissions start at T1, transactions time out "
                            "after 64*T1 (default: 500, RFC 3261)")
    add_force_argument(serve)
    serve.add_argument("--cdr-msgpack", action="store_true",
                       help="also write cdrs.msgpack, as `callsim run` does (off by default: packing it "
                            "costs CPU the server needs under load)")
    serve.add_argument("--cdr-format", choices=("callsim", "teams"), default="callsim",
                       help="teams: also write the CDRs as the Teams admin center's PSTN usage export, "
                            "PSTN.calls.<scenario name>.csv, as `callsim run --cdr-format teams` does")

    load = command("loadgen", "measure setups/s and setup latency against `callsim serve`",
                   ["callsim loadgen --rate 20000 --concurrent 10000 --no-cdr",
                    "callsim loadgen --org demo --user agent-0001 --token \"$CALLSIM_TOKEN_DEMO\"",
                    "callsim loadgen --port 7070 --duration 30 --connections 8"],
                   [(EXIT_OK, "the figures are printed, one `key: value` a line"),
                    (EXIT_CHECK_FAILED, "the server refused the login"),
                    (EXIT_BAD_INPUT[0], "bad options, or the server cannot be reached")])
    load.add_argument("--host", default="127.0.0.1", help="the server's address (default: 127.0.0.1)")
    load.add_argument("--port", type=port, default=7060, help="the server's port (default: 7060)")
    load.add_argument("--org", default="bench", help="org to log in as (default: bench)")
    load.add_argument("--token", default=None,
                      help="its token (default: $CALLSIM_TOKEN_<ORG>, else the demo scenario's)")
    load.add_argument("--user", default="load-0001", help="user placing the calls (default: load-0001)")
    load.add_argument("--to", default="+3225550100", help="number called (default: +3225550100)")
    load.add_argument("--concurrent", type=count, default=10_000,
                      help="calls to keep connected (default: 10000)")
    load.add_argument("--rate", type=count, default=20_000, help="setups per second offered (default: 20000)")
    load.add_argument("--duration", type=seconds, default=10.0, help="measured seconds (default: 10)")
    load.add_argument("--warmup", type=seconds, default=None,
                      help="seconds before measuring (default: long enough to reach --concurrent)")
    load.add_argument("--connections", type=count, default=4, help="TCP connections (default: 4)")
    load.add_argument("--no-cdr", action="store_true",
                      help="log in with cdr=false: `ended` without the CDR columns (less work per call "
                           "on both sides; the CDRs are still written to cdrs.csv)")


def main(args: argparse.Namespace) -> int:
    """Run `serve` or `loadgen`; a mistake in the options or the scenario is a `UsageError`."""
    if args.command == "loadgen":
        from .server import LoadError, LoadOptions, run_loadgen

        try:
            options = LoadOptions.from_args(args)
        except LoadError as err:
            raise UsageError(f"loadgen: {err}") from None
        return run_loadgen(options)
    import trio

    from ._stop_signals import unwake_at_exit
    from .metrics import MetricsServer
    from .outputs import claim_for_command
    from .server import Limits, ServerConfig, TokenConflict, resolve_tokens, serve

    scenario = load_checked(args.scenario, args.force, serving=True)
    try:  # before anything is created: a scenario whose orgs would share a credential is not served
        resolve_tokens(scenario.setup, os.environ)
    except TokenConflict as err:
        raise UsageError(f"{args.scenario}: {err}") from None
    edges = _sip_edges(args, scenario)
    max_frame, max_output = max(args.max_frame, 64), max(args.max_output_buffer, 1 << 16)
    budget, budget_text = _buffer_budget(args.max_buffered_bytes, max_frame, max_output, UsageError)
    out = args.out if args.out is not None else Path(f"serve-{scenario.name}")
    claim = claim_for_command(out, UsageError)  # the server's until it returns (_out_dir)
    limits = Limits(max_frame=max_frame, idle_timeout_s=args.idle_timeout or 1e9,
                    max_inflight=max(args.max_inflight, 1), max_calls=max(args.max_calls, 1),
                    max_output_buffer=max_output,
                    max_connections=max(_connection_limit(args.max_connections), 1),
                    login_timeout_s=args.login_timeout or 1e9,
                    max_buffered_bytes=budget)
    metrics = None
    if args.metrics_port is not None:
        try:
            metrics = MetricsServer(args.host, args.metrics_port)
        except OSError as err:
            claim.release()
            raise UsageError(f"--metrics-port {args.metrics_port}: cannot listen on {args.host} "
                             f"({err.strerror or err})") from None
    keep_freed_memory()  # see simulator/_malloc.py: p99 at 100k connected calls
    # Everything loaded so far (modules, scenario) lives as long as the process: keep it out of
    # the collector's full passes, which would otherwise pause every connection for tens of ms.
    gc.freeze()
    # Any other thread (the sender to the files process, trio's thread hops) may by default keep
    # the GIL 5 ms before the event loop gets it back, a stall every connection's setups wait out.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    config = ServerConfig(out_dir=out, host=args.host, port=None if args.sip_only else args.port,
                          edges=edges, limits=limits, metrics=metrics,
                          write_msgpack=args.cdr_msgpack, teams_export=args.cdr_format == "teams",
                          files_process=True,
                          announce=lambda text: _listening(f"{text}\ncallsim: {budget_text}"))
    if metrics is not None:
        _say(f"callsim: metrics at {metrics.url}")
    try:
        result = trio.run(unwake_at_exit, serve, scenario, config)
    except OSError as err:
        where = f"{args.host}:{args.port}" + (f" or the SIP address {args.sip}" if args.sip else "")
        raise UsageError(f"cannot listen on {where} ({err.strerror or err})") from None
    finally:
        claim.release()
        if metrics is not None:
            metrics.close()
    if result.error is not None:
        _say(f"callsim: {result.error}")
        return EXIT_CHECK_FAILED
    total = result.summary["total"]
    state = "complete" if result.complete else "stopped"
    _say(f"callsim: {state}: {result.setups} setups, {total['calls']} CDRs, "
         f"{total['billed_s']} s billed, {total['credits_charged']} credits charged; "
         f"outputs in {out}/")
    return EXIT_OK


def _sip_edges(args: argparse.Namespace, scenario) -> list:
    """The SIP listener asked for by --sip (none without it); a bad address or ambiguous SIP
    identities are a UsageError."""
    if args.sip is None:
        if args.sip_only:
            raise UsageError("--sip-only needs --sip [HOST:]PORT")
        return []
    from .sip import SipConfig, SipConflict, SipEdge, SipOptions, parse_listen

    try:
        host, sip_port = parse_listen(args.sip)
    except ValueError as err:
        raise UsageError(f"--sip {err}") from None
    algorithms = tuple(a.strip().upper() for a in args.sip_digest.split(",") if a.strip())
    unknown = [a for a in algorithms if a not in ("MD5", "SHA-256")]
    if unknown or not algorithms or len(set(algorithms)) != len(algorithms):
        raise UsageError(f"--sip-digest {args.sip_digest!r}: a list of MD5 and SHA-256, each once")
    if args.sip_t1 < 1:
        raise UsageError(f"--sip-t1 {args.sip_t1}: timer T1 must be at least 1 ms")
    t1 = args.sip_t1 / 1000
    options = SipOptions(ring_s=args.sip_ring, algorithms=algorithms, t1=t1, t2=max(4.0, t1))
    try:
        return [SipEdge(scenario, SipConfig(host, sip_port, options), os.environ)]
    except SipConflict as err:
        raise UsageError(f"{args.scenario}: {err}") from None


def _connection_limit(asked: int | None) -> int:
    """--max-connections, or the default: 10,000, fewer if the open-files limit cannot hold them.

    The soft limit is raised toward the hard one first (Linux often starts
    processes at 1,024).  FD_RESERVE descriptors stay for the output files,
    the files process's pipe, the metrics endpoint and the listeners.
    """
    wanted = DEFAULT_MAX_CONNECTIONS if asked is None else asked
    try:
        import resource
    except ImportError:  # not a Unix: no limit to consult
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if asked is None and soft != resource.RLIM_INFINITY:
        return min(wanted, max(soft - FD_RESERVE, 1))
    return wanted


def _buffer_budget(asked: int | None, max_frame: int, max_output: int,
                   usage_error: type[Exception]) -> tuple[int, str]:
    """--max-buffered-bytes, or its default from the machine's memory, and the line that says it
    (printed once the server listens).

    One client must be able to use its own limits (a frame and its replies)
    while the budget is under half full, or it could be paused for good: a
    budget under twice that is refused.
    """
    from .server import BUFFER_MEMORY_SHARE as MEMORY_SHARE, default_budget

    floor = 2 * (max_frame + max_output)
    if asked is not None:
        if asked < floor:
            raise usage_error(f"--max-buffered-bytes {asked}: under {floor}, twice one client's "
                              f"--max-frame ({max_frame}) plus --max-output-buffer ({max_output})")
        return asked, f"buffers for clients: {_mib(asked)} in all (--max-buffered-bytes)"
    budget, available = default_budget(floor)
    where = (f"1/{MEMORY_SHARE} of the {_mib(available)} available" if available is not None
             else "memory available unknown")
    return budget, f"buffers for clients: {_mib(budget)} in all ({where}; --max-buffered-bytes)"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _listening(text: str) -> None:
    """The server is up: what it built to serve (engine, directory, tasks) lives as long as it
    does, so freeze that too; a full collection then only walks what calls and connections
    allocate (it took 10-30 ms with the engine's setup objects in it)."""
    gc.freeze()
    _say(text)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
