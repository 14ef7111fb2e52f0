"""The session description of a UAS with no media (RFC 4566, offer/answer RFC 3264).

callsim answers calls but sends no RTP: its answer accepts the first
offered codec of the first audio stream at a fixed port (nothing listens
there), and refuses every other stream (port 0), keeping one m= line per
offered one as RFC 3264 §6 requires.  An INVITE without a body gets an
offer in the 200 (PCMU and PCMA); the ACK's answer is not read.

No maintained Python library parses SDP for a handful of lines, so this is
hand-written, and reads only `c=` and `m=` lines.
"""

from __future__ import annotations

MEDIA_PORT = 40_000  # advertised, never opened: callsim sends and receives no media
_OFFER_CODECS = ("0 8", ("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"))


class NotAcceptable(ValueError):
    """An offer callsim cannot answer (no audio stream with a codec): the INVITE gets a 488."""


def answer(offer: bytes, local_ip: str, session: int) -> bytes:
    """The answer to `offer`: the first audio stream's first codec, the other streams refused."""
    try:
        lines = offer.decode("utf8").splitlines()
    except UnicodeDecodeError:
        raise NotAcceptable("the SDP offer is not UTF-8") from None
    media: list[tuple[str, str, str, list[str], list[str]]] = []  # kind, port, proto, formats, rtpmaps
    for line in lines:
        if line.startswith("m="):
            fields = line[2:].split()
            if len(fields) < 4:
                raise NotAcceptable(f"SDP media line {line[:60]!r}")
            media.append((fields[0], fields[1], fields[2], fields[3:], []))
        elif line.startswith("a=rtpmap:") and media:
            media[-1][4].append(line)
    chosen = next((i for i, m in enumerate(media) if m[0] == "audio" and m[1] != "0"), None)
    if chosen is None:
        raise NotAcceptable("no audio stream in the SDP offer")
    body = _head(local_ip, session)
    for i, (kind, _, proto, formats, rtpmaps) in enumerate(media):
        if i != chosen:
            body.append(f"m={kind} 0 {proto} {formats[0]}")
            continue
        codec = formats[0]
        body.append(f"m=audio {MEDIA_PORT} {proto} {codec}")
        body.extend(m for m in rtpmaps if m.startswith(f"a=rtpmap:{codec} "))
        body.append("a=sendrecv")
    return ("\r\n".join(body) + "\r\n").encode("utf8")


def offer(local_ip: str, session: int) -> bytes:
    """An offer for an INVITE that came without one."""
    body = _head(local_ip, session)
    body.append(f"m=audio {MEDIA_PORT} RTP/AVP {_OFFER_CODECS[0]}")
    body.extend(_OFFER_CODECS[1])
    body.append("a=sendrecv")
    return ("\r\n".join(body) + "\r\n").encode("utf8")


def _head(local_ip: str, session: int) -> list[str]:
    family = "IP6" if ":" in local_ip else "IP4"
    return ["v=0", f"o=callsim {session} {session} IN {family} {local_ip}", "s=callsim",
            f"c=IN {family} {local_ip}", "t=0 0"]
