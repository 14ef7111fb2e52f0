"""The `callsim serve` wire protocol, sans-IO: frames and messages in, checked requests out.

Bytes go in (`FrameReader.feed`), whole frame payloads come out; a payload
decodes to a list of message maps (`decode_payload`), and each client message
is checked into a typed request (`parse_hello`, `parse_setup`, `ref_of`).
Everything a hostile or buggy client can get wrong surfaces as one
`ProtocolError(code, message, ref)` whose code is both the `error` reply's
`code` and the `kind` label of `callsim_server_protocol_errors_total`.
Nothing here knows about sockets, Trio, the engine or metrics, so the
framing and validation are unit-testable and shared with `callsim loadgen`
and the Locust client.  The format is documented in docs/protocol.md.

Frame: a 4-byte big-endian unsigned length, then that many bytes of msgpack:
one message map, or an array of message maps (a batch).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, Union

import msgpack
import msgspec

from rating_core import CallKind

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 1 << 20  # bytes of payload; a frame of 1 MiB holds ~10,000 setups

# -- error codes (docs/protocol.md "Errors"); `fatal` ones close the connection -------------
MALFORMED = "malformed"  # not msgpack, or not a map / array of maps
OVERSIZE = "oversize"  # fatal: frame longer than the server's limit
UNKNOWN_OP = "unknown_op"
BAD_FIELD = "bad_field"  # a field missing, of the wrong type or out of range
NOT_AUTHENTICATED = "not_authenticated"  # setup / hangup before hello
BAD_TOKEN = "bad_token"  # fatal: unknown org or wrong token
ALREADY_AUTHENTICATED = "already_authenticated"
UNKNOWN_USER = "unknown_user"
DUPLICATE_REF = "duplicate_ref"
UNKNOWN_CALL = "unknown_call"  # hangup of a ref with no call in progress on this connection
FLOOD = "flood"  # too many setups awaiting an answer, or too many calls, on this connection
TOO_MANY_ERRORS = "too_many_errors"  # fatal
IDLE_TIMEOUT = "idle_timeout"  # fatal
LOGIN_TIMEOUT = "login_timeout"  # fatal: no hello soon enough after connecting
SLOW_CONSUMER = "slow_consumer"  # fatal: the client does not read its replies
TOO_MANY_CONNECTIONS = "too_many_connections"  # fatal: the server is at its connection limit
UNAVAILABLE = "unavailable"  # the server is stopping, or the simulated period is over
SERVER_ERROR = "server_error"  # fatal: a bug in the server; the connection is dropped

CLIENT_OPS = ("hello", "setup", "hangup", "ping")
_TOLL_FREE = int(CallKind.TOLL_FREE)
CALL_KINDS = {  # wire name -> CallKind code (plain ints: they go straight into numpy arrays)
    "outbound": int(CallKind.OUTBOUND),
    "conference_dial_out": int(CallKind.CONFERENCE_DIAL_OUT),
    "toll_free": int(CallKind.TOLL_FREE),
}
MAX_REF_LEN = 64
MAX_REF_INT = 2**63 - 1
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class ProtocolError(Exception):
    """A client mistake: becomes an `error` reply with `code`, and `ref` when one was readable."""

    def __init__(self, code: str, message: str, ref: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref

    def reply(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "error", "code": self.code, "message": self.message}
        if self.ref is not None:
            msg["ref"] = self.ref
        return msg


# -- framing ---------------------------------------------------------------------------------
_ENCODER = msgspec.msgpack.Encoder()  # the bytes msgpack.packb writes for these maps, ~3x faster


def pack_frame(messages: list[Any]) -> bytes:
    """One frame holding `messages` (maps: dicts, or Structs that encode as maps): a bare map
    for one message, an array for several."""
    payload = _ENCODER.encode(messages[0] if len(messages) == 1 else messages)
    return HEADER.pack(len(payload)) + payload


class FrameReader:
    """Reassembles frames from a byte stream.  `feed` bytes, then iterate `frames()`.

    A length over `max_frame` raises `ProtocolError(OVERSIZE)` as soon as the
    4-byte header is seen: the payload is never buffered, so a client cannot
    make the server hold more than `max_frame` bytes for it.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame payload buffered so far, in order.

        Lazy, so that the frames before an oversize header are still handled
        before its `ProtocolError(OVERSIZE)` is raised.
        """
        buf = self._buf
        while len(buf) - self._pos >= 4:
            (length,) = HEADER.unpack_from(buf, self._pos)
            if length > self.max_frame:
                raise ProtocolError(
                    OVERSIZE, f"frame of {length} bytes exceeds the limit of {self.max_frame}"
                )
            start = self._pos + 4
            if len(buf) - start < length:
                return
            self._pos = start + length
            yield bytes(buf[start : start + length])

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def clear(self) -> None:
        """Forget what was received (the connection is being dropped).  In place: a `frames()`
        under way then finds nothing more."""
        del self._buf[:]
        self._pos = 0


def decode_payload(payload: bytes) -> list[Any]:
    """A frame payload as its list of messages (items are checked one by one by the caller).

    Raises `ProtocolError(MALFORMED)` for anything that is not exactly one
    msgpack map or array: bad bytes, trailing bytes, invalid UTF-8, nesting
    beyond msgpack's stack limit, non-string map keys.
    """
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types (ValueError, ExtraData, ...)
        raise ProtocolError(MALFORMED, f"payload is not valid msgpack ({type(exc).__name__})") from None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise ProtocolError(MALFORMED, "payload must be a message map or an array of message maps")


# -- client messages -------------------------------------------------------------------------
def op_of(msg: Any) -> str:
    """The message's op, checked to be one this server understands."""
    if not isinstance(msg, dict):
        raise ProtocolError(MALFORMED, "each message must be a map")
    op = msg.get("op")
    if not isinstance(op, str):
        raise ProtocolError(BAD_FIELD, "op: required, a string", _loose_ref(msg))
    if op not in CLIENT_OPS:
        raise ProtocolError(UNKNOWN_OP, f"op: unknown operation {op[:40]!r}", _loose_ref(msg))
    return op


_REF_PROBLEM = "ref: required, an integer >= 0 or a string of 1 to 64 characters"


def ref_of(msg: dict[str, Any]) -> int | str:
    """The client's call reference: an integer in [0, 2**63) or a string of 1..64 characters."""
    ref = msg.get("ref")
    if _valid_ref(ref):
        return ref  # type: ignore[return-value]
    raise ProtocolError(BAD_FIELD, _REF_PROBLEM)


@dataclass(frozen=True)
class Hello:
    org: str
    token: str
    cdr: bool = True  # False: `ended` without the CDR columns (they are in cdrs.csv anyway)


def parse_hello(msg: dict[str, Any]) -> Hello:
    org, token, cdr = msg.get("org"), msg.get("token"), msg.get("cdr", True)
    if not isinstance(org, str) or not org:
        raise ProtocolError(BAD_FIELD, "org: required, a non-empty string")
    if not isinstance(token, str):
        raise ProtocolError(BAD_FIELD, "token: required, a string")
    if not isinstance(cdr, bool):
        raise ProtocolError(BAD_FIELD, "cdr: optional, true or false")
    return Hello(org, token, cdr)


class Setup(NamedTuple):
    """A checked `setup`; numbers as int64 digits (0: absent), user as written (None: toll-free).

    A NamedTuple rather than a frozen dataclass: one is built per call, at
    tens of thousands per second, and tuple construction is several times cheaper.
    """

    ref: int | str
    user: str | None
    kind: int  # CallKind code
    to_number: int
    from_number: int


def parse_setup(msg: dict[str, Any]) -> Setup:
    """Check a setup's fields.  Written out flat: it runs once per call, at tens of thousands a second."""
    get = msg.get
    ref = get("ref")
    if not _valid_ref(ref):
        raise ProtocolError(BAD_FIELD, _REF_PROBLEM)
    kind_name = get("type")
    kind = CALL_KINDS.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        raise ProtocolError(BAD_FIELD, "type: required, outbound | conference_dial_out | toll_free", ref)
    user = get("user")
    if kind == _TOLL_FREE:
        if user is not None:
            raise ProtocolError(BAD_FIELD, "user: not allowed for toll_free (the caller is outside the org)", ref)
    elif type(user) is not str or not user:
        raise ProtocolError(BAD_FIELD, "user: required for outbound and conference_dial_out, a string", ref)
    to = get("to")
    to_number = _NUMBERS.get(to) if type(to) is str else None
    if to_number is None:
        to_number = _number(msg, "to", ref, required=True)
    frm = get("from")
    from_number = 0 if frm is None else _NUMBERS.get(frm) if type(frm) is str else None
    if from_number is None:
        from_number = _number(msg, "from", ref, required=False)
    return Setup(ref, user, kind, to_number, from_number)


_NUMBERS: dict[str, int] = {}  # E.164 text -> digits: the same few numbers come again and again
_MAX_NUMBERS = 65_536


def _digits(value: object) -> int | None:
    """An E.164 string's digits as an int (cached), None for anything else."""
    digits = _NUMBERS.get(value) if type(value) is str else None  # type: ignore[arg-type]
    if digits is None and isinstance(value, str) and _E164.fullmatch(value):
        if len(_NUMBERS) >= _MAX_NUMBERS:
            _NUMBERS.clear()
        digits = _NUMBERS[value] = int(value[1:])
    return digits


def is_e164(text: str) -> bool:
    """Whether `text` is a number `setup` accepts in `to` / `from` (clients check theirs with it)."""
    return _E164.fullmatch(text) is not None


def _number(msg: dict[str, Any], key: str, ref: int | str, required: bool) -> int:
    value = msg.get(key)
    if value is None and not required:
        return 0
    digits = _digits(value)
    if digits is not None:
        return digits
    need = "required, " if required else ""
    raise ProtocolError(BAD_FIELD, f'{key}: {need}an E.164 string like "+12125550100"', ref)


# -- the fast path for frames of setups and hangups ------------------------------------------
# A load of calls is nearly all `setup` and `hangup`.  msgspec decodes such a frame straight
# into these Structs, checking every field's type in C, several times faster than decoding
# to dicts and checking them in Python.  It is only a fast path: a frame holding anything
# else (another op, a bad field, bad msgpack) fails it and goes through `decode_payload` and
# the checks above, which say exactly what is wrong.  So these types may accept less than
# `parse_setup` / `ref_of`, never more.
Ref = Union[Annotated[int, msgspec.Meta(ge=0, le=MAX_REF_INT)],
            Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REF_LEN)]]


class SetupMessage(msgspec.Struct, tag_field="op", tag="setup", gc=False):
    """A `setup` with its field types checked; `checked_setup` applies the rules between fields."""

    ref: Ref
    type: Literal["outbound", "conference_dial_out", "toll_free"]
    to: str
    user: Union[str, None] = None
    from_: Union[str, None] = msgspec.field(default=None, name="from")


class HangupMessage(msgspec.Struct, tag_field="op", tag="hangup", gc=False):
    ref: Ref


CallMessage = Union[SetupMessage, HangupMessage]
_CALL_FRAME = msgspec.msgpack.Decoder(Union[list[CallMessage], SetupMessage, HangupMessage])


def decode_calls(payload: bytes) -> list[CallMessage] | None:
    """A frame of only well-typed setups and hangups as Structs; None for any other payload."""
    try:
        value = _CALL_FRAME.decode(payload)
    except Exception:  # DecodeError, ValidationError, UnicodeDecodeError, ...: the slow path says
        return None
    return value if type(value) is list else [value]


def checked_setup(m: SetupMessage) -> tuple[int | str, str | None, int, int, int] | None:
    """`parse_setup`'s fields for a typed setup, or None where it would raise (user, to, from).

    A plain tuple: building the `Setup` NamedTuple costs several times more, once per call.
    """
    kind = CALL_KINDS[m.type]
    user = m.user
    if (user is not None) if kind == _TOLL_FREE else not user:
        return None
    to_number = _digits(m.to)
    from_number = 0 if m.from_ is None else _digits(m.from_)
    if to_number is None or from_number is None:
        return None
    return m.ref, user, kind, to_number, from_number


def _valid_ref(ref: object) -> bool:
    if type(ref) is int:
        return 0 <= ref <= MAX_REF_INT
    return type(ref) is str and 0 < len(ref) <= MAX_REF_LEN


def _loose_ref(msg: dict[str, Any]) -> int | str | None:
    """The ref to echo in an error about some other field, when the message has a valid one."""
    ref = msg.get("ref")
    return ref if _valid_ref(ref) else None
