"""The replies waiting for one client of `callsim serve`, and what they cost in memory.

Messages are queued as objects (the exchange hands them over in bulk), packed
into frames of at most `MAX_MESSAGES_PER_FRAME`, and handed to the kernel:
at once from the exchange's tick when the socket takes them (`write_nowait`),
otherwise by the connection's writer task (`send`).  `buffered` counts the
packed bytes the kernel has not taken yet; messages are packed as soon as
`PACK_AT` of them are waiting, so unpacked objects never hold more than a few
hundred kilobytes and `buffered` is the connection's output memory.  The
connection compares it with its budget (`Limits.max_output_buffer`): past
half of it the client's requests are not read (backpressure), past all of it
the client is dropped.  Every change of `buffered` is also told to `account`
(the connection's share of the server-wide budget, `_budget`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable

import trio

from . import _messages as msgs
from ._wire import pack_frame

MAX_MESSAGES_PER_FRAME = 8192  # replies are split so a client with the default limit can read them
PACK_AT = 1024  # messages waiting before they are packed: a full `ended` is ~1 KB as an object


def _uncounted(delta: int) -> None:
    """Bytes told to no budget: without one, inside `write_nowait` (told once, at its end), or
    after `close`."""


class Outbox:
    """Messages and frames on their way to one client, in order."""

    def __init__(self, fd: int, account: Callable[[int], None] = _uncounted) -> None:
        self._fd = fd  # the socket's descriptor, for `write_nowait` (-1: none, the writer sends all)
        self._messages: list[msgs.Message] = []
        self._frames: deque[bytes] = deque()  # packed; the first may be the rest of a partial write
        self.buffered = 0  # bytes in `_frames`, and in the frame the writer is sending
        self.sending = False  # the writer is in send_all: nothing else may write to the socket
        self._partial = False  # the first frame is the rest of a partial write
        self._drained = trio.Event()  # set whenever `buffered` falls to the level `wait_below` asked
        self._level = -1
        self._account = account

    def __bool__(self) -> bool:
        return bool(self._messages or self._frames)

    def add(self, message: msgs.Message) -> None:
        self._messages.append(message)
        if len(self._messages) >= PACK_AT:
            self.pack()

    def extend(self, messages: list[msgs.Message]) -> None:
        self._messages += messages
        if len(self._messages) >= PACK_AT:
            self.pack()

    def abandon(self, last: msgs.Message) -> None:
        """Drop everything waiting; send `last` (why) if that can be done now and on a frame boundary."""
        self._messages.clear()
        self._frames.clear()
        self._account(-self.buffered)
        self.buffered = 0
        self._drained.set()
        if not self._partial and not self.sending:
            self._messages.append(last)
            self.write_nowait()

    def close(self) -> None:
        """Drop everything, and the link to `account` (the connection has left the budget)."""
        self._messages.clear()
        self._frames.clear()
        self.buffered = 0
        self._account = _uncounted

    def pack(self) -> None:
        """Turn every waiting message into frames (counted in `buffered`)."""
        messages = self._messages
        packed = 0
        while messages:
            data = pack_frame(messages[:MAX_MESSAGES_PER_FRAME])
            del messages[:MAX_MESSAGES_PER_FRAME]
            self._frames.append(data)
            packed += len(data)
        if packed:
            self.buffered += packed
            self._account(packed)

    def write_nowait(self) -> bool:
        """Hand the kernel what it takes now, without waiting; False if the socket is broken.

        The socket is non-blocking: what the kernel does not take stays here
        for the writer task.  Never while the writer is sending (bytes would interleave).
        """
        if self.sending or self._fd < 0:
            return True
        account, before = self._account, self.buffered
        self._account = _uncounted  # counted once, net of what the kernel took: not shed for a burst it takes
        try:
            return self._write_nowait()
        finally:
            self._account = account
            if self.buffered != before:
                account(self.buffered - before)

    def _write_nowait(self) -> bool:
        self.pack()
        frames = self._frames
        while frames:
            data = frames[0]
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                break
            except OSError:  # reset by the peer: the writer's send fails too and ends the connection
                return False
            self._sent(sent)
            if sent < len(data):
                frames[0] = data[sent:]
                self._partial = True
                break
            frames.popleft()
            self._partial = False
        return True

    async def send(self, stream: trio.abc.SendStream) -> None:
        """Send everything waiting, waiting for the client to read it; raises the stream's errors
        (BrokenResourceError, ClosedResourceError, OSError)."""
        while self:
            self.pack()
            if not self._frames:  # packing them passed the server's budget: this client was shed
                return
            data = self._frames.popleft()
            self._partial = False
            self.sending = True
            try:
                await stream.send_all(data)
            finally:
                self.sending = False
            self._sent(len(data))

    async def wait_below(self, level: int) -> None:
        """Return once `buffered` is at most `level` bytes (at once if it is)."""
        while self.buffered > level:
            self._drained = trio.Event()
            self._level = level
            await self._drained.wait()

    def wake_below(self, level: int, event: trio.Event) -> None:
        """Set `event` once `buffered` is at most `level` bytes (never for a negative level)."""
        self._drained = event
        self._level = level

    def _sent(self, n: int) -> None:
        self.buffered -= n
        self._account(-n)
        if self.buffered <= self._level:
            self._drained.set()
