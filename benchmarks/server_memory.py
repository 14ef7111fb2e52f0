"""RSS of `callsim serve` under clients that hoard its memory, and after they leave.

Two loads from docs/server.md §5, against a server started here on
scenarios/server_demo.toml:

* `--readers N`: N clients log in (org bench) and send setup+hangup pairs as
  fast as the server takes them, never reading a reply;
* `--announcers N`: N clients that never log in (`--login`: that log in
  first), each announcing a 1 MiB frame and sending as much of it as the
  server takes.

Prints the server's RSS before, at its peak during the load, and 2 s (`--after`)
after the clients have gone.  Usage (any extra arguments go to `callsim serve`):

    python benchmarks/server_memory.py --readers 10 --seconds 10
    python benchmarks/server_memory.py --announcers 1000 --seconds 10
    python benchmarks/server_memory.py --announcers 1000 --login --seconds 10
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
from pathlib import Path

import trio

import simulator
from simulator.server._wire import pack_frame

ROOT = Path(simulator.__file__).resolve().parents[1]  # the tree on PYTHONPATH serves: compare two


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


async def client_that_never_reads(port: int, stop: trio.Event) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(pack_frame([{"op": "hello", "org": "bench", "token": "bench-token"}]))
    ref = 0
    try:
        while not stop.is_set():
            frame = []
            for _ in range(500):
                frame += [{"op": "setup", "ref": ref, "user": "load-0001", "type": "outbound",
                           "to": "+3225550100"}, {"op": "hangup", "ref": ref}]
                ref += 1
            with trio.move_on_after(0.5):
                await stream.send_all(pack_frame(frame))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # dropped by the server
    finally:
        await stop.wait()
        await stream.aclose()


async def announcer(port: int, stop: trio.Event, login: bool) -> None:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return
    try:
        if login:  # logged in, frames up to --max-frame are allowed
            await stream.send_all(pack_frame([{"op": "hello", "org": "bench", "token": "bench-token"}]))
        await stream.send_all(struct.pack(">I", 1 << 20))
        chunk = b"\0" * 65536
        for _ in range(15):  # 960 KiB of the 1 MiB announced: never a whole frame
            with trio.move_on_after(0.5):
                await stream.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stop.wait()
        await stream.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=0)
    parser.add_argument("--announcers", type=int, default=0)
    parser.add_argument("--login", action="store_true", help="announcers log in first")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--after", type=float, default=2.0, help="seconds after the clients left")
    args, serve_args = parser.parse_known_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "serve", str(ROOT / "scenarios" / "server_demo.toml"),
         "--port", "0", "--out", "/tmp/callsim-server-memory", *serve_args],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = ""
    while "serving" not in line:
        line = server.stderr.readline()
        if not line:
            sys.exit("the server did not start")
    port = int(re.search(r":(\d+) \(orgs", line).group(1))
    await trio.sleep(1)
    before = rss_mb(server.pid)
    peak = before
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(args.readers):
            nursery.start_soon(client_that_never_reads, port, stop)
        for _ in range(args.announcers):
            nursery.start_soon(announcer, port, stop, args.login)
        end = trio.current_time() + args.seconds
        while trio.current_time() < end:
            await trio.sleep(0.2)
            peak = max(peak, rss_mb(server.pid))
        stop.set()
    await trio.sleep(args.after)
    after = rss_mb(server.pid)
    server.send_signal(2)
    server.wait(30)
    print(f"readers {args.readers}, announcers {args.announcers}: RSS before {before:.0f} MB, "
          f"peak {peak:.0f} MB, {args.after:g} s after {after:.0f} MB")


if __name__ == "__main__":
    trio.run(main)
