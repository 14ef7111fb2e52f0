"""SIP messages in and out: `sipmessage` parses and serialises, this module judges and frames.

sipmessage turns bytes into a Request or Response with raw header values
(its typed accessors parse a header on demand) and `bytes(message)`
serialises.  Two costs of its are avoided on the hot path, measured in the
commit that did it: its header store compares names lower-cased one by one
(`Headers` here is the same interface with an index, filled by `_message`,
the steps of `Message.parse`), and its typed Via/From/To accessors cost four
times the parse: `check` reads the five fields every message needs from the
raw values.  The INVITE's own fields (caller, Contact, Request-URI,
credentials) are read with sipmessage's types.  Done here besides:

* judging a request fit to handle (RFC 3261 §8.2, §18.3): the five headers a
  response is built from (Via, From, To, Call-ID, CSeq) present and
  readable, CSeq's method equal to the request's, Content-Length consistent
  with the body.  A request that fails gets a 400 when those five headers are
  at least present (`Malformed.reply`), else it is dropped; every failure has
  a `kind` (the label of `callsim_sip_malformed_total`);
* salvage: a message refused for one bad header line or an unparseable
  Request-URI is parsed again without them, only to learn whether a 400 can
  be sent;
* framing on a stream (TCP): messages are cut by Content-Length (`StreamFramer`);
* responses built from a request (`response`): Via, From, To, Call-ID and CSeq
  copied verbatim (RFC 3261 §8.2.6.2), the top Via given `received`/`rport`
  (§18.2.1, RFC 3581) by appending text (sipmessage's `Parameters` would
  percent-encode an IPv6 `received`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import sipmessage
from sipmessage import URI, Request, Response
from sipmessage.message import COMPACT_FORMS

MAX_MESSAGE = 65_535  # bytes: the largest UDP datagram; a TCP message past it closes the connection
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")

# -- kinds of malformed message (`callsim_sip_malformed_total{kind}`) ----------------------------
NOT_SIP = "not_sip"  # not a SIP start line, no header end, not UTF-8: dropped
BAD_HEADER_LINE = "bad_header_line"  # a header line without a colon, or folded
BAD_REQUEST_URI = "bad_request_uri"
MISSING_HEADER = "missing_header"  # one of REQUIRED absent
BAD_VIA = "bad_via"
BAD_FROM_TO = "bad_from_to"
BAD_CSEQ = "bad_cseq"  # unparseable, or its method is not the request's
BAD_CONTENT_LENGTH = "bad_content_length"
TOO_LARGE = "too_large"
MALFORMED_KINDS = (NOT_SIP, BAD_HEADER_LINE, BAD_REQUEST_URI, MISSING_HEADER, BAD_VIA, BAD_FROM_TO,
                   BAD_CSEQ, BAD_CONTENT_LENGTH, TOO_LARGE)

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    481: "Call/Transaction Does Not Exist", 484: "Address Incomplete", 487: "Request Terminated",
    488: "Not Acceptable Here", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable",
}
_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.IGNORECASE | re.MULTILINE)
_BRANCH_COOKIE = "z9hG4bK"


class Malformed(Exception):
    """A message that cannot be handled: `kind` for the metrics, `reply` a 400 when one can be formed."""

    def __init__(self, kind: str, reason: str, reply: Request | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.reply = reply  # the request, parsed well enough to answer (a 400), or None: drop


class Incoming(NamedTuple):
    """A request checked fit to handle, with the fields every layer above reads, parsed once."""

    request: Request
    method: str
    branch: str  # top Via's branch; for an RFC 2543 peer (no magic cookie), a key made of the rest
    sent_by: str  # top Via's host:port
    call_id: str
    from_tag: str
    to_tag: str
    cseq: int
    uri: str  # the Request-URI as received (digest's `uri` is compared with it)


class Headers(sipmessage.Headers):
    """sipmessage's header store with a dict index, same interface.

    sipmessage's own compares the name lower-cased against every stored
    header on each `add` and look-up: about 200 `str.lower` calls per message,
    38 % of the server's CPU at 1,500 calls/s (cProfile, process time).
    Names keep the case and order they were added in; look-ups ignore case.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[str, list[str]]] = []
        self._index: dict[str, list[str]] = {}

    def add(self, key: str, value: str) -> None:
        values = self._index.get(key.lower())
        if values is None:
            values = self._index[key.lower()] = [value]
            self._entries.append((key, values))
        else:
            values.append(value)

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._index.get(key.lower())
        return values[0] if values else default

    def getlist(self, key: str) -> list[str]:
        return self._index.get(key.lower()) or []

    def keys(self) -> list[str]:
        return [k for k, _ in self._entries]

    def remove(self, key: str) -> None:
        ikey = key.lower()
        if self._index.pop(ikey, None) is not None:
            self._entries = [(k, v) for k, v in self._entries if k.lower() != ikey]

    def set(self, key: str, value: str) -> None:
        self.setlist(key, [value])

    def setlist(self, key: str, values: list[str]) -> None:
        ikey = key.lower()
        if ikey in self._index:
            self._entries = [(k, values if k.lower() == ikey else v) for k, v in self._entries]
        else:
            self._entries.append((key, values))
        self._index[ikey] = values

    def __getitem__(self, key: str) -> str:
        values = self._index.get(key.lower())
        if not values:
            raise KeyError(key)
        return values[0]

    def __str__(self) -> str:
        return "".join(f"{k}: {v}\r\n" for k, values in self._entries for v in values) + "\r\n"


def request(method: str, uri: URI, body: bytes = b"") -> Request:
    """A sipmessage Request with the indexed `Headers`."""
    out = Request(method, uri, body)
    out.headers = Headers()
    return out


def _message(data: bytes) -> Request | Response:
    """`sipmessage.Message.parse`, storing headers in the indexed `Headers` (its own store cannot
    be swapped in: it builds the message inside).  The same steps, plus: a header name is
    stripped (`Via :` is Via), so one space before the colon does not lose the header."""
    head, sep, body = data.partition(_HEADER_END)
    if not sep:
        raise ValueError("SIP message has too few lines")
    lines = head.decode("utf8").split("\r\n")
    bits = lines[0].split(" ", 2)
    message: Request | Response
    if len(bits) > 2 and bits[2] == "SIP/2.0":
        message = request(bits[0], URI.parse(bits[1]), body)
    elif len(bits) > 2 and bits[0] == "SIP/2.0":
        message = Response(int(bits[1]), bits[2], body)
        message.headers = Headers()
    else:
        raise ValueError("SIP message is neither request nor response")
    add = message.headers.add
    for line in lines[1:]:
        key, value = line.split(":", 1)
        key = key.strip()
        add(COMPACT_FORMS.get(key.lower(), key), value.strip())
    return message


def parse(data: bytes, stream: bool = False) -> Request | Response:
    """A message from bytes, or `Malformed` (with `reply` set when a 400 can still be sent).

    `stream`: it came over TCP, where a request without Content-Length is malformed (RFC 3261
    §20.14: the header is mandatory over stream transports; over UDP its absence means the
    rest of the datagram is the body).
    """
    if len(data) > MAX_MESSAGE:
        raise Malformed(TOO_LARGE, f"message of {len(data)} bytes")
    try:
        message = _message(data)
    except (ValueError, IndexError) as err:
        raise _salvage(data, str(err)) from None
    if isinstance(message, Request):
        _check_length(message, stream)
    return message


def check(request: Request) -> Incoming:
    """The request's dialog and transaction fields, or `Malformed` (with a 400 to send).

    sipmessage has parsed the message; the five fields every message needs on
    the hot path (Via's sent-by and branch, the From and To tags, CSeq) are
    read from the raw header values with the small patterns below: its typed
    accessors (`request.via`, `from_address`, `to_address`) cost 40 us a
    message together, four times the parse itself (see the commit message).
    The INVITE's own fields (caller, Contact, Request-URI) stay sipmessage's.
    """
    headers = request.headers
    for name in REQUIRED:
        if headers.get(name) is None:
            raise Malformed(MISSING_HEADER, f"no {name} header", None)
    top = top_via(headers["Via"])
    if top is None:
        raise Malformed(BAD_VIA, "Via is not valid", request)
    host, port, params = top
    from_value, to_value = headers["From"], headers["To"]
    if not from_value or not to_value or from_value.count("<") != from_value.count(">"):
        raise Malformed(BAD_FROM_TO, "From or To is not valid", request)
    from_tag, to_tag = tag_of(from_value), tag_of(to_value)
    cseq = headers["CSeq"].split()
    if len(cseq) != 2 or not cseq[0].isdigit() or len(cseq[0]) > 10:
        raise Malformed(BAD_CSEQ, "CSeq is not valid", request)
    method = request.method
    if cseq[1] != method and not (method == "ACK" and cseq[1] == "INVITE"):
        raise Malformed(BAD_CSEQ, f"CSeq method {cseq[1][:20]} is not {method}", request)
    call_id = headers["Call-ID"]
    sent_by = f"{host}:{port}"
    found = _BRANCH.search(params)
    branch = found.group(1) if found else ""
    if not branch.startswith(_BRANCH_COOKIE):  # RFC 2543 peers: RFC 3261 §17.2.3's fallback, simplified
        branch = f"{branch}|{call_id}|{from_tag}|{cseq[0]}"
    return Incoming(request, method, branch, sent_by, call_id, from_tag, to_tag, int(cseq[0]),
                    str(request.uri))


_TOP_VIA = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
                      r"(?:\s*:\s*(\d{1,5}))?([^,]*)")
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)
_TAG = re.compile(r";\s*tag\s*=\s*([^;,\s>]+)", re.IGNORECASE)
_RPORT = re.compile(r";\s*rport(?=\s*(?:;|$))", re.IGNORECASE)


def top_via(value: str) -> tuple[str, int, str] | None:
    """(host, port, parameters text) of the first Via in a header value, None if it is not one."""
    found = _TOP_VIA.match(value)
    if found is None:
        return None
    params = found.group(4).rstrip()
    if params and not params.lstrip().startswith(";"):
        return None
    return found.group(2).strip("[]"), int(found.group(3) or 5060), params


def branch_of(via: str) -> str:
    """The branch parameter of the first Via in a header value ('' if none)."""
    top = top_via(via)
    found = _BRANCH.search(top[2]) if top is not None else None
    return found.group(1) if found else ""


def tag_of(address: str) -> str:
    """The `tag` parameter of a From/To value ('' without one): after the `>` of a name-addr."""
    end = address.rfind(">")
    found = _TAG.search(address, end + 1 if end >= 0 else 0)
    return found.group(1) if found else ""


def _check_length(request: Request, stream: bool) -> None:
    """RFC 3261 §18.3: a body shorter than Content-Length is an error (400); a longer one is cut.
    Over a stream transport Content-Length must be present (§20.14): its absence is a 400."""
    value = request.headers.get("Content-Length")
    if value is None:
        if stream:
            raise Malformed(MISSING_HEADER, "Content-Length is required over TCP", request)
        return
    try:
        length = int(value)
        if length < 0:
            raise ValueError
    except ValueError:
        raise Malformed(BAD_CONTENT_LENGTH, f"Content-Length {value[:20]!r}", request) from None
    if length > len(request.body):
        raise Malformed(BAD_CONTENT_LENGTH, f"Content-Length {length} past the body's {len(request.body)} bytes",
                        request)
    request.body = request.body[:length]


def _salvage(data: bytes, why: str) -> Malformed:
    """Why `data` failed, and whether it can be answered: parse it again without the bad parts."""
    head, sep, body = data.partition(_HEADER_END)
    if not sep:
        return Malformed(NOT_SIP, "no end of headers")
    try:
        lines = head.decode("utf8").split("\r\n")
    except UnicodeDecodeError:
        return Malformed(NOT_SIP, "not UTF-8")
    start = lines[0].split(" ", 2)
    if len(start) < 3 or start[2] != "SIP/2.0" or not start[0].isalpha():
        return Malformed(NOT_SIP, "not a SIP request")  # a broken response is never answered
    kind, reason = BAD_HEADER_LINE, why
    try:
        URI.parse(start[1])
    except ValueError:
        kind, reason = BAD_REQUEST_URI, f"Request-URI {start[1][:60]!r} is not valid"
    kept = [line for line in lines[1:] if ":" in line and line[:1] not in (" ", "\t")]
    text = "\r\n".join([f"{start[0]} sip:invalid SIP/2.0", *kept])
    try:
        salvaged = _message(text.encode("utf8") + _HEADER_END + body)
    except (ValueError, IndexError):
        return Malformed(kind, reason)
    answerable = all(salvaged.headers.get(name) is not None for name in REQUIRED)
    return Malformed(kind, reason, salvaged if answerable else None)  # type: ignore[arg-type]


def response(inc: Incoming | Request, code: int, source: tuple[str, int], *, to_tag: str = "",
             reason: str = "", phrase: str = "") -> Response:
    """A response to a request: Via, From, To (with `to_tag` added if it has none), Call-ID, CSeq.

    `source` is the address the request came from: the top Via gets
    `received` when its host differs and `rport` filled when asked for.
    `reason` adds a `Reason` header (RFC 3326).  Other headers and a body are
    the caller's to add.  Content-Length is left for `serialise`.
    """
    theirs = (inc.request if isinstance(inc, Incoming) else inc).headers
    out = Response(code, phrase or REASON_PHRASES.get(code, "Unknown"))
    headers = out.headers = Headers()
    vias = theirs.getlist("Via")
    if vias:
        headers.setlist("Via", [_received(vias[0], source), *vias[1:]])
    headers.add("From", theirs.get("From") or "")
    to = theirs.get("To") or ""
    if to_tag and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    headers.add("To", to)
    headers.add("Call-ID", theirs.get("Call-ID") or "")
    headers.add("CSeq", theirs.get("CSeq") or "")
    if reason:
        headers.add("Reason", reason)
    return out


def _received(via: str, source: tuple[str, int]) -> str:
    """The top Via of a response: `received` if the sent-by host is not the source's, `rport` filled.

    Only the first Via of a header line that may hold several is touched.
    """
    first, comma, rest = via.partition(",")
    top = top_via(first)
    if top is None:
        return via
    host, port = source
    first = first.rstrip()
    if top[0] != host:
        first += f";received={host}"
    if _RPORT.search(top[2]):
        first = _RPORT.sub(f";rport={port}", first, count=1)
    return first + comma + rest


def serialise(message: Request | Response, body: bytes = b"", content_type: str = "") -> bytes:
    """The bytes on the wire, Content-Length (and Content-Type with a body) set."""
    if body:
        message.headers.set("Content-Type", content_type)
    message.body = body
    message.headers.set("Content-Length", str(len(body)))
    return bytes(message)


class StreamFramer:
    """Messages cut from a byte stream (TCP) by their Content-Length (RFC 3261 §18.3).

    `feed` bytes, then iterate `messages()`.  Keep-alive CRLFs between
    messages (RFC 5626 §3.5.1) are skipped.  A header block or body past
    MAX_MESSAGE raises `Malformed(TOO_LARGE)`, and a Content-Length that is not
    a number `Malformed(BAD_CONTENT_LENGTH)`: the stream cannot be
    resynchronised, the connection must close.  A message without
    Content-Length is cut at its header block (the parser then answers 400:
    the header is mandatory over TCP).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def messages(self) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buffer
        while True:
            start = 0
            while buf[start:start + 2] == b"\r\n":
                start += 2
            if start:
                del buf[:start]
            end = buf.find(_HEADER_END)
            if end < 0:
                if len(buf) > MAX_MESSAGE:
                    raise Malformed(TOO_LARGE, "header block past the limit")
                return out
            found = _CONTENT_LENGTH.search(bytes(buf[:end]))
            try:
                length = int(found.group(1)) if found else 0
                if length < 0:
                    raise ValueError
            except ValueError:
                raise Malformed(BAD_CONTENT_LENGTH, "Content-Length is not a number") from None
            total = end + 4 + length
            if total > MAX_MESSAGE:
                raise Malformed(TOO_LARGE, f"message of {total} bytes")
            if len(buf) < total:
                return out
            out.append(bytes(buf[:total]))
            del buf[:total]
