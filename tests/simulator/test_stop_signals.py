"""StopSignals (simulator/_stop_signals.py): a stop request is noted once, never raised mid-run."""

from __future__ import annotations

import signal

import pytest

from simulator._stop_signals import STOP_SIGNALS, StopSignals


def test_a_signal_is_noted_and_wakes_the_run_once_however_many_come() -> None:
    woken: list[int] = []
    with StopSignals.installed() as stops, stops.waking(lambda: woken.append(1)):
        signal.raise_signal(signal.SIGTERM)  # no KeyboardInterrupt, no exit
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
    assert stops.received == signal.SIGTERM and woken == [1]


def test_a_signal_before_the_run_wakes_it_as_it_starts() -> None:
    woken: list[int] = []
    with StopSignals.installed() as stops:
        signal.raise_signal(signal.SIGINT)
        with stops.waking(lambda: woken.append(1)):
            assert woken == [1]


def test_after_the_run_the_first_signal_raises_keyboard_interrupt_and_later_ones_nothing() -> None:
    with StopSignals.installed() as stops:
        stops.raise_next()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)  # while the first one is being handled: ignored


def test_no_keyboard_interrupt_after_the_run_if_the_run_was_stopped_already() -> None:
    with StopSignals.installed() as stops:
        signal.raise_signal(signal.SIGINT)
        stops.raise_next()
        signal.raise_signal(signal.SIGINT)
    assert stops.received == signal.SIGINT


def test_the_previous_handlers_are_restored() -> None:
    before = [signal.getsignal(s) for s in STOP_SIGNALS]
    with StopSignals.installed():
        assert [signal.getsignal(s) for s in STOP_SIGNALS] != before
    assert [signal.getsignal(s) for s in STOP_SIGNALS] == before


def test_handed_back_sigterm_raises_keyboard_interrupt_as_ctrl_c_does() -> None:
    before = [signal.getsignal(s) for s in STOP_SIGNALS]
    stops = StopSignals()
    try:
        stops.take_over()
        stops.hand_back()
        assert signal.getsignal(signal.SIGINT) == before[0]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    finally:
        for s, handler in zip(STOP_SIGNALS, before):
            signal.signal(s, handler)


def test_a_signal_while_trio_closes_its_wakeup_socket_prints_nothing(monkeypatch) -> None:
    """Trio closes the socket signals wake it through before it unsets it; a SIGTERM sent in
    between (as repeated Ctrl-C or SIGTERM can) must not make Python report a failed write
    to the signal wakeup fd, once `unwake_at_exit` has unset it."""
    import os
    import sys

    import trio
    from trio._core import _wakeup_socketpair

    from simulator._stop_signals import unwake_at_exit

    close = _wakeup_socketpair.WakeupSocketpair.close

    def close_with_a_signal_in_between(self) -> None:
        self.wakeup_sock.close()  # Trio's order: the read end first ...
        os.kill(os.getpid(), signal.SIGTERM)  # ... a signal now writes to the wakeup fd, if set
        close(self)

    monkeypatch.setattr(_wakeup_socketpair.WakeupSocketpair, "close", close_with_a_signal_in_between)
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    async def run() -> str:
        await trio.sleep(0)
        return "done"

    with StopSignals.installed() as stops:
        assert trio.run(unwake_at_exit, run) == "done"
    assert stops.received == signal.SIGTERM and reported == []
    assert signal.set_wakeup_fd(-1) == -1  # nothing left set


def test_every_event_loop_of_the_commands_unsets_the_wakeup_fd_before_trio_closes_it() -> None:
    """Each `trio.run` of simulator/ runs under `unwake_at_exit` (run, serve, loadgen, bench,
    sweep's kept runs): a repeated Ctrl-C while any of them stops must not print Trio's
    BrokenPipeError (the test above shows why)."""
    import ast
    from pathlib import Path

    import simulator

    bare = []
    for path in Path(simulator.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "trio"):
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Name) and first.id == "unwake_at_exit"):
                    bare.append(f"{path.name}:{node.lineno}")
    assert not bare, bare
