"""SIPp at a steady call rate against `callsim serve --sip`: setups/s sustained, failures, latency.

    python benchmarks/sip_load.py [--rate 1500] [--duration 60] [--hold S] [--transport u1|t1]

Starts `python -m simulator serve load_tests/sip/callsim.toml --sip 127.0.0.1:0` (with its
Prometheus endpoint), then SIPp's load_tests/sip/call.xml with load.csv (the 1,000 sales users
calling US numbers, trusted by address: no digest round trip) at `--rate` calls/s for
`--duration` s, each call held `--hold` s (default: 10,000 / rate, so ~10,000 dialogs are in
progress once the first calls hang up).  Then prints:

- setups/s sustained: calls answered per second, mean and minimum over the whole seconds of
  the steady part (from the first hang-ups to the last new call), from SIPp's -trace_rtt;
- failed calls (SIPp's FailedCall) and SIPp's retransmissions (any is unexpected on loopback:
  a request SIPp sent again because callsim's answer came later than 500 ms);
- callsim's own retransmissions and timeouts (callsim_sip_* counters, when it exports them);
- INVITE -> 200 OK latency p50 / p99 / max in ms (SIPp measures whole ms);
- dialogs in progress, peak: SIPp's CurrentCall, and callsim's gauge when it exports one.

The targets (issue: 1,500 setups/s for 60 s, zero failed calls, zero unexpected
retransmissions, p99 under 20 ms, 10,000 dialogs) are for a quiet 2-core machine: SIPp and
callsim each want a core.  Exit status 1 if any call failed.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOAD_TESTS = REPO / "load_tests" / "sip"
_LISTENING = re.compile(r"SIP\b.*?\b(\d+\.\d+\.\d+\.\d+):(\d+)")
# Printed before it: `callsim: metrics at http://127.0.0.1:9464/metrics`.
_METRICS = re.compile(r"metrics at (http://\S+/metrics)")
_SAMPLE = re.compile(r"^(callsim_sip_\w+)(\{[^}]*\})? ([0-9.e+-]+|NaN)$", re.M)


class Server:
    """`callsim serve --sip`, waited for on its startup line, stopped with SIGINT.

    Every port is the system's choice (port 0), read from the lines the server prints: a port
    found free here and handed over later could be taken meanwhile by another process.
    """

    def __init__(self, scenario: Path, out: Path) -> None:
        self.metrics_url = ""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "serve", str(scenario), "--port", "0",
             "--sip", "127.0.0.1:0", "--metrics-port", "0", "--out", str(out)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        seen = []
        deadline = time.monotonic() + 60
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise SystemExit("callsim exited before listening:\n" + "".join(seen))
            seen.append(line)
            if url := _METRICS.search(line):
                self.metrics_url = url[1]
            found = _LISTENING.search(line)
            if found:
                self.target = f"{found[1]}:{found[2]}"
                return

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            lines.put(line)
        lines.put(None)

    def metrics(self) -> dict[str, float]:
        """callsim_sip_* samples, summed over their labels (empty if none are exported)."""
        if not self.metrics_url:
            return {}
        try:
            text = urllib.request.urlopen(self.metrics_url, timeout=2).read().decode()
        except OSError:
            return {}
        found: dict[str, float] = {}
        for name, _, value in _SAMPLE.findall(text):
            if value != "NaN" and not name.endswith(("_bucket", "_created")):
                found[name] = found.get(name, 0.0) + float(value)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _watch_gauges(server: Server, done: threading.Event, peaks: dict[str, float]) -> None:
    """The peak of each callsim_sip_* gauge-like sample, scraped twice a second."""
    while not done.wait(0.5):
        for name, value in server.metrics().items():
            if not name.endswith("_total"):
                peaks[name] = max(peaks.get(name, 0.0), value)


def _percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]) if ordered else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1500.0, help="calls per second (default 1500)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of new calls (default 60)")
    parser.add_argument("--hold", type=float, default=None,
                        help="seconds each call is held (default: 10000 / rate)")
    parser.add_argument("--transport", default="u1", help="SIPp's -t: u1 (UDP) or t1 (TCP)")
    parser.add_argument("--scenario", type=Path, default=LOAD_TESTS / "callsim.toml")
    args = parser.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp is not installed (Debian: apt-get install sip-tester)")
    hold_s = args.hold if args.hold is not None else 10_000 / args.rate
    calls = int(args.rate * args.duration)
    with tempfile.TemporaryDirectory(prefix="callsim-sip-load-") as tmp:
        work = Path(tmp)
        server = Server(args.scenario, work / "out")
        done, peaks = threading.Event(), {}
        watcher = threading.Thread(target=_watch_gauges, args=(server, done, peaks), daemon=True)
        watcher.start()
        try:
            command = [sipp, "-sf", str(LOAD_TESTS / "call.xml"), "-inf", str(LOAD_TESTS / "load.csv"),
                       server.target, "-t", args.transport, "-r", f"{args.rate:g}", "-rp", "1000",
                       "-m", str(calls), "-d", str(int(hold_s * 1000)),
                       "-l", str(int(args.rate * hold_s * 2) + 100), "-max_socket", "50000",
                       "-timeout", f"{int(args.duration + hold_s + 60)}s", "-nostdin",
                       "-trace_stat", "-stf", str(work / "stat.csv"), "-fd", "1",
                       "-trace_rtt", "-rtt_freq", "1000"]
            print(f"sip_load: {calls:,} calls at {args.rate:g}/s, held {hold_s:.2f} s, "
                  f"SIPp -t {args.transport} -> callsim {server.target}", flush=True)
            started = time.monotonic()
            subprocess.run(command, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=args.duration + hold_s + 120)
            elapsed = time.monotonic() - started
            counters = server.metrics()
        finally:
            done.set()
            server.stop()
        _report(work, args.rate, args.duration, hold_s, elapsed, counters, peaks)


def _report(work: Path, rate: float, duration: float, hold_s: float, elapsed: float,
            counters: dict[str, float], peaks: dict[str, float]) -> None:
    with open(work / "stat.csv", newline="") as f:
        stats = list(csv.DictReader(f, delimiter=";"))
    last = stats[-1]
    rtts: list[int] = []
    answered_per_s: dict[int, int] = {}
    for path in work.glob("call_*_rtt.csv"):
        with open(path, newline="") as f:
            for row in csv.DictReader(f, delimiter=";"):
                rtts.append(int(float(row["response_time_ms"])))
                second = int(float(row["Date_ms"]) // 1000)
                answered_per_s[second] = answered_per_s.get(second, 0) + 1
    steady = [answered_per_s.get(s, 0) for s in range(int(hold_s) + 1, int(duration) - 1)]
    if not steady:  # a run too short to have a steady part
        steady = list(answered_per_s.values())
    failed = int(last["FailedCall(C)"])
    print(f"elapsed: {elapsed:.1f} s")
    print(f"calls: {int(last['OutgoingCall(C)']):,} placed, {int(last['SuccessfulCall(C)']):,} "
          f"successful, {failed:,} failed")
    print(f"setups/s sustained: mean {sum(steady) / max(len(steady), 1):,.0f}, "
          f"min {min(steady, default=0):,} over {len(steady)} whole seconds (target {rate:g})")
    print(f"SIPp retransmissions: {int(last['Retransmissions(C)']):,}")
    for name in sorted(counters):
        if "retrans" in name or "timeout" in name or "malformed" in name:
            print(f"callsim {name}: {counters[name]:,.0f}")
    print(f"INVITE -> 200 OK: p50 {_percentile(rtts, 0.50):.0f} ms, p99 {_percentile(rtts, 0.99):.0f} ms, "
          f"max {max(rtts, default=0)} ms over {len(rtts):,} calls")
    peak = max((int(row["CurrentCall"]) for row in stats), default=0)
    print(f"dialogs in progress, peak: {peak:,} (SIPp's CurrentCall)")
    for name, value in sorted(peaks.items()):
        if "dialog" in name:
            print(f"dialogs in progress, peak: {value:,.0f} (callsim {name})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
