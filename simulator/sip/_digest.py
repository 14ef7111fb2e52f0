"""Per-org digest authentication of SIP requests (RFC 3261 §22, RFC 7616, RFC 8760).

A request that needs an org's credentials and brings none gets a 407 with
one `Proxy-Authenticate` challenge per algorithm, in the server's order of
preference (RFC 8760 §2.4: the client takes the first it supports),
`qop="auth"`.  MD5 comes first by default because SIPp 3.6, the usual test
client, reads only the first challenge and speaks only MD5; `--sip-digest
SHA-256,MD5` prefers the stronger one.

Whose credentials they are is told by the digest username (each org has its
own, `SipIdentities.by_username`); the realm must be that org's.  Nonces are
stateless to issue and cheap to check: the issuing instant and an HMAC over
(server secret, realm, caller, instant), so a nonce obtained in one realm, or
by one caller (a user of one org), is refused for another (`bad_nonce`), and one older than `nonce_ttl_s` is
answered by a fresh challenge with `stale=true` (not a failure: the client
retries with the new nonce).  Replays are refused by nonce count: each
nonce remembers the highest `nc` it was used with, until it expires, and a
response whose `nc` is not above it is a `replay`.

Failures are values (`Verdict.failure`), each a label of
`callsim_sip_auth_failures_total{reason}`; the request is then refused
with 403.  The parsing of header parameters is sipmessage's
(`AuthCredentials`, `AuthChallenge`); the arithmetic is hashlib and hmac:
no maintained Python library implements the server side of SIP digest
(nonce issuing, nc replay, RFC 8760's algorithms).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import NamedTuple, Protocol, TypeVar

from sipmessage import AuthChallenge, AuthCredentials, AuthParameters

ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
DEFAULT_ALGORITHMS = ("MD5", "SHA-256")  # the offer order; RFC 8760 lets the server choose it

# -- failure reasons (`callsim_sip_auth_failures_total{reason}`) ---------------------------------
BAD_RESPONSE = "bad_response"  # the digest does not match: a wrong password
UNKNOWN_USER = "unknown_user"  # a digest username no org has
WRONG_REALM = "wrong_realm"  # an org's username with another realm than the org's
BAD_NONCE = "bad_nonce"  # a nonce this server never issued in this realm to this caller
REPLAY = "replay"  # a nonce count already used
BAD_PARAMS = "bad_params"  # missing fields, an algorithm or qop not offered, a uri not the request's
FAILURES = (BAD_RESPONSE, UNKNOWN_USER, WRONG_REALM, BAD_NONCE, REPLAY, BAD_PARAMS)

_STAMP = struct.Struct(">Q")


class Secret(Protocol):
    """An org's credentials as the scenario gives them (`simulator.sip.Credentials`)."""

    realm: str
    username: str
    password: str | None


S = TypeVar("S", bound=Secret)


class Verdict(NamedTuple):
    ok: bool
    stale: bool = False  # the nonce was ours but expired: challenge again with stale=true
    failure: str = ""  # a FAILURES reason, or '' (no credentials at all: challenge)
    credentials: Secret | None = None  # whose credentials they were (when ok or stale)


NO_CREDENTIALS = Verdict(False)


class DigestAuth:
    """Issues and checks nonces; one per server (its `secret` is the server's, random at start)."""

    def __init__(self, secret: bytes, nonce_ttl_s: float = 60.0,
                 algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> None:
        unknown = [a for a in algorithms if a not in ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"digest algorithms: {unknown or 'none'} (known: {', '.join(ALGORITHMS)})")
        self._secret = secret
        self._ttl_ms = int(nonce_ttl_s * 1000)
        self.algorithms = algorithms
        self._counts: dict[str, int] = {}  # nonce -> highest nc seen
        self._expiry: collections.deque[tuple[int, str]] = collections.deque()  # FIFO: one TTL for all

    def challenges(self, realm: str, caller: str, now: float, stale: bool = False) -> list[str]:
        """The Proxy-Authenticate values of a 407 in `realm` to `caller` (one per algorithm,
        preferred first); the nonce is good for that realm and caller only."""
        nonce = self._nonce(realm, caller, int(now * 1000))
        out = []
        for algorithm in self.algorithms:
            params = {"realm": realm, "nonce": nonce, "algorithm": algorithm, "qop": "auth"}
            if stale:
                params["stale"] = "true"
            out.append(str(AuthChallenge("Digest", AuthParameters(**params))))
        return out

    def verify(self, values: list[str], find: Callable[[str], S | None], method: str,
               uris: tuple[str, ...], caller: str, now: float) -> Verdict:
        """Judge the Proxy-Authorization `values` of a request: whose credentials, and are they right.

        `find` maps a digest username to its org's credentials; `uris` are the digest-uri
        values accepted: the Request-URI (RFC 2617 §3.2.2.5), and `sip:host:port` of it, which
        SIPp 3.6 sends (a replay is refused by the nonce count either way).  Returns an ok
        verdict (with the credentials), NO_CREDENTIALS (none sent: challenge),
        a stale one (challenge again in that realm) or a failure (refuse, 403).
        A nonce is only good in the realm it was issued for.
        """
        if not values:
            return NO_CREDENTIALS
        try:
            parsed = AuthCredentials.parse(values[0])
        except ValueError:
            return Verdict(False, failure=BAD_PARAMS)
        params = parsed.parameters
        if parsed.scheme.lower() != "digest" or params is None:
            return Verdict(False, failure=BAD_PARAMS)
        creds = find(params.get("username", ""))
        if creds is None or not creds.password:
            return Verdict(False, failure=UNKNOWN_USER)
        if params.get("realm") != creds.realm:
            return Verdict(False, failure=WRONG_REALM)
        algorithm = params.get("algorithm", "MD5")
        nonce, nc, cnonce = params.get("nonce", ""), params.get("nc", ""), params.get("cnonce", "")
        if (algorithm not in self.algorithms or params.get("qop") != "auth" or not cnonce
                or params.get("uri") not in uris or len(nc) != 8):
            return Verdict(False, failure=BAD_PARAMS)
        try:
            count = int(nc, 16)
        except ValueError:
            return Verdict(False, failure=BAD_PARAMS)
        issued = self._issued(nonce, creds.realm, caller)
        if issued is None:
            return Verdict(False, failure=BAD_NONCE)
        now_ms = int(now * 1000)
        hash_ = ALGORITHMS[algorithm]
        ha1 = _h(hash_, f"{creds.username}:{creds.realm}:{creds.password}")
        ha2 = _h(hash_, f"{method}:{params['uri']}")
        expected = _h(hash_, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        if not hmac.compare_digest(expected.encode(), params.get("response", "").lower().encode()):
            return Verdict(False, failure=BAD_RESPONSE)
        if now_ms - issued > self._ttl_ms:
            return Verdict(False, stale=True, credentials=creds)
        self._forget(now_ms)
        last = self._counts.get(nonce)
        if last is not None and count <= last:
            return Verdict(False, failure=REPLAY)
        if last is None:
            self._expiry.append((issued + self._ttl_ms, nonce))
        self._counts[nonce] = count
        return Verdict(True, credentials=creds)

    def _nonce(self, realm: str, caller: str, now_ms: int) -> str:
        stamp = _STAMP.pack(now_ms)
        return stamp.hex() + self._mac(realm, caller, stamp)

    def _issued(self, nonce: str, realm: str, caller: str) -> int | None:
        """The instant (ms) `nonce` was issued in `realm` to `caller`, or None if it was not."""
        if len(nonce) != 48:
            return None
        try:
            stamp = bytes.fromhex(nonce[:16])
        except ValueError:
            return None
        if not hmac.compare_digest(nonce[16:].encode(), self._mac(realm, caller, stamp).encode()):
            return None
        return _STAMP.unpack(stamp)[0]

    def _mac(self, realm: str, caller: str, stamp: bytes) -> str:
        key = b"\0".join((realm.encode(), caller.encode(), stamp))
        return hmac.new(self._secret, key, hashlib.sha256).hexdigest()[:32]

    def _forget(self, now_ms: int) -> None:
        """Drop the counts of expired nonces (they are refused as stale before being looked up)."""
        expiry = self._expiry
        while expiry and expiry[0][0] < now_ms:
            self._counts.pop(expiry.popleft()[1], None)


def _h(hash_, text: str) -> str:
    return hash_(text.encode("utf8")).hexdigest()


def authorization(challenge: str, username: str, password: str, method: str, uri: str, cnonce: str,
                  nc: int = 1, realm: str | None = None) -> str:
    """A Proxy-Authorization value answering `challenge` (a client's side, for tests and tools);
    `realm` overrides the challenge's (to test a wrong one)."""
    params = AuthChallenge.parse(challenge).parameters
    algorithm = params.get("algorithm", "MD5")
    hash_ = ALGORITHMS[algorithm]
    realm = params["realm"] if realm is None else realm
    ha1 = _h(hash_, f"{username}:{realm}:{password}")
    ha2 = _h(hash_, f"{method}:{uri}")
    count = f"{nc:08x}"
    response = _h(hash_, f"{ha1}:{params['nonce']}:{count}:{cnonce}:auth:{ha2}")
    return str(AuthCredentials("Digest", AuthParameters(
        username=username, realm=realm, nonce=params["nonce"], uri=uri,
        response=response, algorithm=algorithm, qop="auth", nc=count, cnonce=cnonce)))
