"""callsim's SIP user agent server, sans-IO: datagrams and outcomes in, datagrams and calls out.

Like h11's `Connection`, `Endpoint` owns every rule of the protocol and no
socket, clock or task: the caller hands it what arrived (`receive(data, peer,
now)`), the rating core's outcomes (`answered`, `rejected`, `ended`) and the
time (`timers_due(now)`, asking `next_deadline()` when to come back), and
runs the actions it returns: `Send` a message to a peer, `Setup` a call,
`Hangup` a call.  Time is Trio's float seconds.

Rule 1 (h11's): every state transition of a dialog lives in this file.

One initial INVITE is one `Dialog`: its server transaction (RFC 3261
§17.2.1, with RFC 6026's Accepted state) and the dialog it creates.

    INVITE ─► 100 Trying ─► [RINGING: 180, `ring_s`] ─► SUBMITTED (a `Setup`)
      SUBMITTED ─answered─► ANSWERED (200 sent, resent at T1, 2T1, ... T2 until the ACK)
      ANSWERED ─ACK─► CONFIRMED ─caller's BYE─► HUNG_UP (200, `Hangup`) ─ended─► gone
      ANSWERED / CONFIRMED ─cut by the rules or the stop─► ENDING (our BYE, timers E/F) ─► gone
      ANSWERED ─no ACK by 64·T1 (timer H)─► BYE sent and `Hangup` at that instant
      SUBMITTED / RINGING ─CANCEL─► 200 for the CANCEL, 487 for the INVITE (REFUSED)
      refused (4xx/5xx) ─► REFUSED: resent at T1... until the ACK or timer H (UDP only)

Retransmitted requests are absorbed: an INVITE with a known (branch,
sent-by) gets the last response again (never a second `Setup`), a
non-INVITE request with a known transaction gets its cached final response
(timer J: kept 64·T1 over UDP).  A CANCEL while the call is SUBMITTED (on
its way to the rating core) cannot unsend it: the call is hung up at the
very instant it arrived, so it is billed nothing (a `hangup` CDR of 0 s);
one while RINGING never reaches the rating core (no CDR).

Who may act on a dialog: requests inside a dialog name it by Call-ID, the
caller's tag and callsim's tag (16 random hex digits, unguessable), and
must come from the address the INVITE came from; anything else gets a 481.
So one org can end only its own calls; placing them is guarded by digest
authentication or the org's trusted addresses (`_digest`, `_identities`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable

from sipmessage import URI, Address, Request, Response

from . import _message as msg
from . import _sdp as sdp
from ._dialog import (
    ANSWERED, CONFIRMED, ENDING, HUNG_UP, REFUSED, RINGING, SUBMITTED, Action, Dialog, Hangup, Peer,
    Send, Setup, SipOptions, SipStats,
)
from ._digest import DigestAuth
from ._identities import CONFERENCE_HEADER, SipCall, SipIdentities

log = logging.getLogger("callsim.sip")

ALLOWED = "INVITE, ACK, BYE, CANCEL, OPTIONS"
KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
                           "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"})

# Reason header (RFC 3326) per callsim end reason: a Q.850 cause a SIP tool understands, and the
# end reason itself as the text.
Q850 = {"unroutable": 3, "not_licensed": 57, "blocked_no_balance": 21, "dropped_balance_exhausted": 17,
        "simulation_end": 16, "hangup": 16, "no_ack": 102}
REFUSAL_CODES = {"unroutable": 404, "not_licensed": 403, "blocked_no_balance": 402}

# timer kinds
_RING, _RESEND, _GIVE_UP, _BYE_RESEND, _BYE_TIMEOUT = range(5)


class Endpoint:
    """The UAS.  Every public method returns the actions to run, in order."""

    def __init__(self, identities: SipIdentities, options: SipOptions, secret: bytes | None = None,
                 observe_setup: Callable[[float], None] = lambda s: None) -> None:
        self.options = options
        self.stats = SipStats()
        self._identities = identities
        self._auth = DigestAuth(secret or secrets.token_bytes(32), options.nonce_ttl_s, options.algorithms)
        self._observe_setup = observe_setup
        self._refs = itertools.count(1)
        self._seq = itertools.count()
        self._by_ref: dict[int, Dialog] = {}
        self._invites: dict[tuple[str, str], Dialog] = {}  # INVITE transactions by (branch, sent-by)
        self._dialogs: dict[str, Dialog] = {}  # by our tag
        self._done: dict[tuple[str, str, str], bytes] = {}  # non-INVITE final responses (timer J)
        self._done_expiry: deque[tuple[float, tuple[str, str, str]]] = deque()
        self._byes: dict[str, Dialog] = {}  # our BYE client transactions, by branch
        self._timers: list[tuple[float, int, int, Dialog]] = []
        self._session = itertools.count(1)
        self.stopping = False  # the rating core takes no more calls: new INVITEs get 503

    @property
    def dialogs(self) -> int:
        """Dialogs in progress (the `callsim_sip_dialogs` gauge)."""
        return len(self._dialogs)

    # -- input ------------------------------------------------------------------------------
    def receive(self, data: bytes, peer: Peer, now: float) -> list[Action]:
        """One message from `peer`; never raises for anything the peer sent."""
        out: list[Action] = []
        try:
            self._receive(data, peer, now, out)
        except Exception:  # a bug must cost one message, never the server
            log.exception("SIP message from %s:%s not handled", peer.host, peer.port)
            self.stats.dropped["server_error"] = self.stats.dropped.get("server_error", 0) + 1
        return out

    def _receive(self, data: bytes, peer: Peer, now: float, out: list[Action]) -> None:
        try:
            message = msg.parse(data, stream=peer.reliable)
            if isinstance(message, Response):
                self._response(message, now, out)
                return
            inc = msg.check(message)
        except msg.Malformed as err:
            self.stats.malformed[err.kind] += 1
            self.stats.malformed_total += 1
            if err.reply is not None and err.reply.method != "ACK":
                self._reply(out, err.reply, 400, peer, phrase=_phrase(400, err.reason))
            return
        method = inc.method
        self.stats.count(self.stats.requests, method if method in KNOWN_METHODS else "other")
        if method == "INVITE" and not inc.to_tag:
            self._invite(inc, peer, now, out)
        elif method == "ACK":
            self._ack(inc, peer, now)
        else:
            self._non_invite(inc, peer, now, out)

    # -- INVITE (initial) ---------------------------------------------------------------------
    def _invite(self, inc: msg.Incoming, peer: Peer, now: float, out: list[Action]) -> None:
        dialog = self._invites.get((inc.branch, inc.sent_by))
        if dialog is not None:  # a retransmission: one admission, one call
            self.stats.retransmissions["request_absorbed"] += 1
            if dialog.last:
                out.append(Send(peer, dialog.last))
            return
        request = inc.request
        require = [x for x in request.require if x]
        if require:
            self._refuse_new(inc, peer, now, out, 420, extra=(("Unsupported", ", ".join(require)),))
            return
        if request.body and (request.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/sdp":
            self._refuse_new(inc, peer, now, out, 415, extra=(("Accept", "application/sdp"),))
            return
        if self.stopping or len(self._dialogs) >= self.options.max_dialogs:
            self._refuse_new(inc, peer, now, out, 503, extra=(("Retry-After", "5"),))
            return
        target = _remote_target(request)
        if target is None:
            self._refuse_new(inc, peer, now, out, 400, phrase=_phrase(400, "no valid Contact or From address"))
            return
        found = self._place(inc, peer, now, out)
        if found is None:
            return
        try:
            body = (sdp.answer(request.body, self.options.host, next(self._session)) if request.body
                    else sdp.offer(self.options.host, next(self._session)))
        except sdp.NotAcceptable as err:
            self._refuse_new(inc, peer, now, out, 488, phrase=_phrase(488, str(err)))
            return
        dialog = self._new_dialog(inc, peer, now)
        dialog.sdp = body
        dialog.remote_target = target
        dialog.routes = request.headers.getlist("Record-Route")
        dialog.remote_from = request.headers["From"]
        trying = msg.response(inc, 100, (peer.host, peer.port))
        out.append(Send(peer, self._count(msg.serialise(trying), 100)))
        dialog.last = out[-1].data
        ring = self._ring_s(request)
        if ring > 0:
            ringing = self._to_invite(dialog, 180)
            dialog.last = ringing
            out.append(Send(peer, ringing))
            self._schedule(now + ring, _RING, dialog)
            dialog.call = found
            return
        self._submit(dialog, found, now, out)

    def _place(self, inc: msg.Incoming, peer: Peer, now: float, out: list[Action]) -> SipCall | None:
        """Who places this call, for which org (a trusted address, else digest credentials), and
        what call it is (`SipIdentities.call_for`); None when it was refused (response in `out`)."""
        request, ids = inc.request, self._identities
        caller = _caller_part(request)
        org = ids.trusted_org(peer.host)
        if org is None:
            uri = request.uri
            bare = f"sip:{uri.host}:{uri.port}" if uri.port else f"sip:{uri.host}"
            verdict = self._auth.verify(request.headers.getlist("Proxy-Authorization"), ids.by_username,
                                        "INVITE", (inc.uri, bare), caller, now)
            if verdict.failure:  # answered statelessly, as the challenges: see `_challenge`
                self.stats.count(self.stats.auth_failures, verdict.failure)
                self._reply(out, inc, 403, peer, phrase="Forbidden (wrong credentials)")
                return None
            if verdict.stale and verdict.credentials is not None:
                self._challenge(inc, peer, now, out, verdict.credentials.realm, caller, stale=True)
                return None
            if verdict.credentials is not None:
                org = verdict.credentials.org  # type: ignore[attr-defined]
        conference = request.headers.get(CONFERENCE_HEADER)
        found = ids.call_for(caller, request.uri.user or "", conference.strip() if conference else None, org)
        if isinstance(found, SipCall):
            return found
        if found.status == 407:
            self._challenge(inc, peer, now, out, ids.realm_for(caller), caller)
        else:
            self._refuse_new(inc, peer, now, out, found.status, phrase=_phrase(found.status, found.detail))
        return None

    def _challenge(self, inc: msg.Incoming, peer: Peer, now: float, out: list[Action], realm: str,
                   caller: str, stale: bool = False) -> None:
        """A 407, sent statelessly: whoever is not yet authenticated makes the server keep
        nothing (a retransmitted INVITE is challenged again; its ACK matches nothing and is
        dropped), so a flood of INVITEs cannot fill memory with transactions."""
        values = self._auth.challenges(realm, caller, now, stale)
        self._reply(out, inc, 407, peer, extra=tuple(("Proxy-Authenticate", v) for v in values))

    def _new_dialog(self, inc: msg.Incoming, peer: Peer, now: float) -> Dialog:
        dialog = Dialog(next(self._refs), inc, peer, secrets.token_hex(8), now)
        dialog.local_to = f"{inc.request.headers['To']};tag={dialog.local_tag}"
        self._invites[dialog.tx] = dialog
        self._dialogs[dialog.local_tag] = dialog
        self._by_ref[dialog.ref] = dialog
        return dialog

    def _refuse_new(self, inc: msg.Incoming, peer: Peer, now: float, out: list[Action], code: int,
                    extra: tuple[tuple[str, str], ...] = (), reason: str = "", phrase: str = "") -> None:
        """A final non-2xx answer to an INVITE that made no dialog: kept to absorb retransmissions
        and resent until its ACK (timers G and H)."""
        dialog = Dialog(next(self._refs), inc, peer, secrets.token_hex(8), now)
        self._invites[dialog.tx] = dialog
        self._final_refusal(dialog, code, now, out, extra, reason, phrase)

    def _ring_s(self, request: Request) -> float:
        value = request.headers.get("X-Callsim-Ring")
        if value is None:
            return self.options.ring_s
        try:
            return min(max(int(value), 0), 60_000) / 1000
        except ValueError:
            return self.options.ring_s

    def _submit(self, dialog: Dialog, call: SipCall, now: float, out: list[Action]) -> None:
        dialog.state = SUBMITTED
        dialog.rated = True
        dialog.received = now
        out.append(Setup(dialog.ref, call, now))

    def bound(self, ref: int, call_id: int) -> None:
        """The rating core took the `Setup` of `ref` as call `call_id`."""
        dialog = self._by_ref.get(ref)
        if dialog is not None:
            dialog.call_id = call_id

    def unavailable(self, ref: int, now: float) -> list[Action]:
        """The rating core refused the `Setup` (the server is stopping): 503."""
        out: list[Action] = []
        dialog = self._by_ref.get(ref)
        if dialog is not None:
            dialog.rated = False
            self._final_refusal(dialog, 503, now, out, (("Retry-After", "5"),))
        return out

    # -- outcomes from the rating core --------------------------------------------------------
    def answered(self, ref: int, now: float) -> list[Action]:
        """The call of `ref` is connected: 200 OK with the SDP (487 if CANCEL came first)."""
        out: list[Action] = []
        dialog = self._by_ref.get(ref)
        if dialog is None or dialog.state != SUBMITTED:
            return out
        if dialog.cancelled:  # CANCEL/BYE crossed the setup: hung up at its arrival (see `_cancel`)
            self._final_refusal(dialog, 487, now, out, reason=_reason("cancelled"))
            return out
        dialog.state = ANSWERED
        ok = self._to_invite(dialog, 200, body=dialog.sdp, contact=True)
        dialog.last = ok
        dialog.invite = None
        out.append(Send(dialog.peer, ok))
        self._observe_setup(now - dialog.received)
        dialog.interval = self.options.t1
        self._schedule(now + dialog.interval, _RESEND, dialog)
        self._schedule(now + 64 * self.options.t1, _GIVE_UP, dialog)
        return out

    def rejected(self, ref: int, end_reason: str, now: float) -> list[Action]:
        """The rating core refused the call: 404 / 403 / 402 with a Reason naming why."""
        out: list[Action] = []
        dialog = self._by_ref.get(ref)
        if dialog is None:
            return out
        dialog.rated = False
        if dialog.state != SUBMITTED:  # its TCP connection closed meanwhile: nobody to answer
            self._forget_dialog(dialog)
        elif dialog.cancelled:
            self._final_refusal(dialog, 487, now, out, reason=_reason("cancelled"))
        else:
            self._final_refusal(dialog, REFUSAL_CODES.get(end_reason, 403), now, out, reason=_reason(end_reason))
        return out

    def ended(self, ref: int, end_reason: str, now: float) -> list[Action]:
        """The rating core ended the call: a cut (`dropped_balance_exhausted`, `simulation_end`)
        gets our BYE; a hang-up callsim asked for needs nothing more."""
        out: list[Action] = []
        dialog = self._by_ref.get(ref)
        if dialog is None:
            return out
        dialog.rated = False
        if dialog.state in (ANSWERED, CONFIRMED):
            self._send_bye(dialog, end_reason, now, out)
        elif dialog.state in (HUNG_UP, SUBMITTED):
            self._forget_dialog(dialog)
        return out

    def connection_lost(self, conn: int, now: float) -> list[Action]:
        """A TCP connection closed: its dialogs' calls are hung up now (nobody to send a BYE to)."""
        out: list[Action] = []
        for dialog in [d for d in self._by_ref.values() if d.peer.conn == conn]:
            if (dialog.rated and dialog.call_id and not dialog.cancelled
                    and dialog.state in (ANSWERED, CONFIRMED, SUBMITTED)):
                at = dialog.received if dialog.state == SUBMITTED else now
                out.append(Hangup(dialog.call_id, at))
            dialog.state = HUNG_UP if dialog.rated else REFUSED
            if not dialog.rated:
                self._forget_dialog(dialog)
        return out

    def stop(self, now: float) -> list[Action]:
        """The server stops: INVITEs still ringing (never rated) get a 503 now.  Calls the rating
        core has are ended by it (`simulation_end`) and get their BYE through `ended`."""
        out: list[Action] = []
        self.stopping = True
        for dialog in [d for d in self._by_ref.values() if d.state == RINGING]:
            self._final_refusal(dialog, 503, now, out, (("Retry-After", "5"),))
        return out

    # -- ACK ----------------------------------------------------------------------------------
    def _ack(self, inc: msg.Incoming, peer: Peer, now: float) -> None:
        """ACK of a 2xx ends the 200's resends; ACK of a refusal ends the INVITE transaction."""
        if inc.to_tag:
            dialog = self._dialogs.get(inc.to_tag)
            if dialog is not None and dialog.sip_call_id == inc.call_id and dialog.remote_tag == inc.from_tag:
                if dialog.state == ANSWERED:
                    dialog.state = CONFIRMED
                    dialog.last = b""  # an INVITE retransmitted now would be answered by nothing
                return
        dialog = self._invites.get((inc.branch, inc.sent_by))
        if dialog is not None and dialog.state == REFUSED:
            dialog.acked = True  # stops timer G (the transaction stays to absorb retransmissions)

    # -- requests other than an initial INVITE --------------------------------------------------
    def _non_invite(self, inc: msg.Incoming, peer: Peer, now: float, out: list[Action]) -> None:
        key = (inc.branch, inc.sent_by, inc.method)
        cached = self._done.get(key)
        if cached is not None:
            self.stats.retransmissions["request_absorbed"] += 1
            out.append(Send(peer, cached))
            return
        method = inc.method
        if method == "CANCEL":
            self._cancel(inc, key, peer, now, out)
        elif method not in ("BYE", "OPTIONS", "INVITE"):
            code = 405 if method in KNOWN_METHODS else 501
            self._final(out, key, inc, code, peer, now, extra=(("Allow", ALLOWED),))
        elif not inc.to_tag:  # only OPTIONS may come outside a dialog
            if method == "OPTIONS":
                self._final(out, key, inc, 200, peer, now, extra=(("Allow", ALLOWED), ("Accept", "application/sdp")))
            else:
                self._final(out, key, inc, 481, peer, now)
        else:
            dialog = self._in_dialog(inc, peer)
            if dialog is None:
                self._final(out, key, inc, 481, peer, now)
            elif method == "BYE":
                self._bye(dialog, inc, key, peer, now, out)
            elif method == "INVITE":  # a re-INVITE: same session, nothing billed
                try:
                    body = sdp.answer(inc.request.body, self.options.host, next(self._session)) \
                        if inc.request.body else dialog.sdp
                except sdp.NotAcceptable:
                    self._final(out, key, inc, 488, peer, now)
                    return
                self._final(out, key, inc, 200, peer, now, body=body, contact=True)
            else:
                self._final(out, key, inc, 200, peer, now, extra=(("Allow", ALLOWED),))

    def _in_dialog(self, inc: msg.Incoming, peer: Peer) -> Dialog | None:
        """The dialog a request names, if it names it fully and comes from the caller's address."""
        dialog = self._dialogs.get(inc.to_tag)
        if (dialog is None or dialog.sip_call_id != inc.call_id or dialog.remote_tag != inc.from_tag
                or dialog.peer.host != peer.host):
            return None
        return dialog

    def _bye(self, dialog: Dialog, inc: msg.Incoming, key: tuple[str, str, str], peer: Peer, now: float,
             out: list[Action]) -> None:
        self._final(out, key, inc, 200, peer, now)
        state = dialog.state
        if state in (ANSWERED, CONFIRMED):
            dialog.state = HUNG_UP
            if dialog.call_id:
                out.append(Hangup(dialog.call_id, now))
        elif state in (RINGING, SUBMITTED):  # a BYE on the early dialog: as a CANCEL
            self._stop_setup(dialog, now, out)
        elif state == ENDING:  # our BYE crossed theirs: the call has ended already
            pass

    def _cancel(self, inc: msg.Incoming, key: tuple[str, str, str], peer: Peer, now: float,
                out: list[Action]) -> None:
        """RFC 3261 §9.2: 200 for the CANCEL; the INVITE, if not yet answered, gets a 487."""
        dialog = self._invites.get((inc.branch, inc.sent_by))
        if dialog is None or dialog.sip_call_id != inc.call_id or dialog.peer.host != peer.host:
            self._final(out, key, inc, 481, peer, now)
            return
        self._final(out, key, inc, 200, peer, now)
        if dialog.state in (RINGING, SUBMITTED) and not dialog.cancelled:
            self._stop_setup(dialog, now, out)

    def _stop_setup(self, dialog: Dialog, now: float, out: list[Action]) -> None:
        """The caller gave up before the answer.  Ringing: 487 now, nothing rated.  Submitted: the
        rating core has the call; it is hung up at its own arrival instant (billed nothing), and
        the 487 goes out when its answer comes back."""
        dialog.cancelled = True
        if dialog.state == RINGING:
            self._final_refusal(dialog, 487, now, out, reason=_reason("cancelled"))
        elif dialog.call_id:
            out.append(Hangup(dialog.call_id, dialog.received))

    # -- responses to our BYEs -------------------------------------------------------------------
    def _response(self, response: Response, now: float, out: list[Action]) -> None:
        dialog = self._byes.get(msg.branch_of(response.headers.get("Via") or ""))
        if dialog is None or response.code < 200:
            if dialog is None:
                self.stats.dropped["stray_response"] += 1
            return
        del self._byes[dialog.bye_tx]
        self._forget_dialog(dialog)

    def _send_bye(self, dialog: Dialog, end_reason: str, now: float, out: list[Action]) -> None:
        """Our BYE (a client transaction, RFC 3261 §17.1.2): resent at T1, 2T1 .. T2 over UDP, given
        up after 64·T1 (timer F)."""
        dialog.state = ENDING
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        opts = self.options
        transport = "TCP" if dialog.peer.reliable else "UDP"
        bye = msg.request("BYE", _uri(dialog.remote_target))
        h = bye.headers
        h.add("Via", f"SIP/2.0/{transport} {_hostport(opts.host, opts.port)};branch={branch};rport")
        h.add("Max-Forwards", "70")
        for value in dialog.routes:
            h.add("Route", value)
        h.add("From", dialog.local_to)
        h.add("To", dialog.remote_from)
        h.add("Call-ID", dialog.sip_call_id)
        h.add("CSeq", "1 BYE")
        h.add("Reason", _reason(end_reason))
        dialog.bye = msg.serialise(bye)
        dialog.bye_tx = branch
        self._byes[branch] = dialog
        out.append(Send(dialog.peer, dialog.bye))
        if not dialog.peer.reliable:
            dialog.bye_interval = opts.t1
            self._schedule(now + opts.t1, _BYE_RESEND, dialog)
        self._schedule(now + 64 * opts.t1, _BYE_TIMEOUT, dialog)

    # -- timers ---------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When `timers_due` has something to do (None: nothing scheduled)."""
        first = self._timers[0][0] if self._timers else None
        if self._done_expiry and (first is None or self._done_expiry[0][0] < first):
            return self._done_expiry[0][0]  # cached responses to forget (an OPTIONS-only peer)
        return first

    def timers_due(self, now: float) -> list[Action]:
        out: list[Action] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, kind, dialog = heapq.heappop(timers)
            self._timer(kind, dialog, at, now, out)
        expiry, done = self._done_expiry, self._done
        while expiry and expiry[0][0] <= now:
            done.pop(expiry.popleft()[1], None)
        return out

    def _timer(self, kind: int, dialog: Dialog, at: float, now: float, out: list[Action]) -> None:
        opts = self.options
        if kind == _RING:
            call, dialog.call = dialog.call, None
            if dialog.state == RINGING and not dialog.cancelled and call is not None:
                self._submit(dialog, call, at, out)
        elif kind == _RESEND:  # timer G for a refusal (UDP), the 200's resends (RFC 3261 §13.3.1.4)
            if dialog.state == ANSWERED or (dialog.state == REFUSED and not dialog.acked):
                out.append(Send(dialog.peer, dialog.last))
                self.stats.retransmissions["response_sent"] += 1
                dialog.interval = min(dialog.interval * 2, opts.t2)
                self._schedule(at + dialog.interval, _RESEND, dialog)
        elif kind == _GIVE_UP:  # timer H
            if dialog.state == ANSWERED:  # no ACK for the 200: end the call now (RFC 3261 §13.3.1.4)
                self.stats.timeouts["no_ack"] += 1
                if dialog.call_id and dialog.rated:
                    out.append(Hangup(dialog.call_id, at))
                self._send_bye(dialog, "no_ack", at, out)
            elif dialog.state == REFUSED and not dialog.acked:
                self.stats.timeouts["no_ack"] += 1
            if self._invites.get(dialog.tx) is dialog:  # the transaction's life ends (RFC 6026)
                del self._invites[dialog.tx]
        elif kind == _BYE_RESEND:
            if dialog.state == ENDING and self._byes.get(dialog.bye_tx) is dialog:
                out.append(Send(dialog.peer, dialog.bye))
                self.stats.retransmissions["bye_sent"] += 1
                dialog.bye_interval = min(dialog.bye_interval * 2, opts.t2)
                self._schedule(at + dialog.bye_interval, _BYE_RESEND, dialog)
        elif kind == _BYE_TIMEOUT:
            if self._byes.get(dialog.bye_tx) is dialog:
                self.stats.timeouts["bye_unanswered"] += 1
                del self._byes[dialog.bye_tx]
                self._forget_dialog(dialog)

    def _schedule(self, at: float, kind: int, dialog: Dialog) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, dialog))

    # -- building and sending responses --------------------------------------------------------
    def _final_refusal(self, dialog: Dialog, code: int, now: float, out: list[Action],
                       extra: tuple[tuple[str, str], ...] = (), reason: str = "", phrase: str = "") -> None:
        """A final non-2xx response to the INVITE; the dialog (if any) goes, the transaction stays
        (absorbing retransmissions, resending the response until the ACK: timers G and H)."""
        dialog.state = REFUSED
        data = self._to_invite(dialog, code, extra=extra, reason=reason, phrase=phrase)
        dialog.last = data
        dialog.invite = None
        out.append(Send(dialog.peer, data))
        self._dialogs.pop(dialog.local_tag, None)
        self._by_ref.pop(dialog.ref, None)
        dialog.interval = self.options.t1
        if not dialog.peer.reliable:  # timer G: UDP only
            self._schedule(now + dialog.interval, _RESEND, dialog)
        self._schedule(now + 64 * self.options.t1, _GIVE_UP, dialog)

    def _to_invite(self, dialog: Dialog, code: int, body: bytes = b"", contact: bool = False,
                   extra: tuple[tuple[str, str], ...] = (), reason: str = "", phrase: str = "") -> bytes:
        inc = dialog.invite
        assert inc is not None
        response = msg.response(inc, code, (dialog.peer.host, dialog.peer.port), to_tag=dialog.local_tag,
                                reason=reason, phrase=phrase)
        for name, value in extra:
            response.headers.add(name, value)
        if contact:
            self._contact(response, dialog.peer)
        return self._count(msg.serialise(response, body, "application/sdp"), code)

    def _contact(self, response: Response, peer: Peer) -> None:
        opts = self.options
        transport = ";transport=tcp" if peer.reliable else ""
        response.headers.add("Contact", f"<sip:callsim@{_hostport(opts.host, opts.port)}{transport}>")

    def _reply(self, out: list[Action], inc: msg.Incoming | Request, code: int, peer: Peer,
               extra: tuple[tuple[str, str], ...] = (), phrase: str = "") -> None:
        """A stateless response (to a request that makes no transaction worth keeping)."""
        response = msg.response(inc, code, (peer.host, peer.port), to_tag=secrets.token_hex(8) if code > 100 else "",
                                phrase=phrase)
        for name, value in extra:
            response.headers.add(name, value)
        out.append(Send(peer, self._count(msg.serialise(response), code)))

    def _final(self, out: list[Action], key: tuple[str, str, str], inc: msg.Incoming, code: int, peer: Peer,
               now: float, extra: tuple[tuple[str, str], ...] = (), body: bytes = b"",
               contact: bool = False) -> None:
        """The final response of a non-INVITE server transaction, kept for its retransmissions
        (timer J: 64·T1 over UDP)."""
        tag = "" if inc.to_tag else secrets.token_hex(8)
        response = msg.response(inc, code, (peer.host, peer.port), to_tag=tag)
        for name, value in extra:
            response.headers.add(name, value)
        if contact:
            self._contact(response, peer)
        data = self._count(msg.serialise(response, body, "application/sdp"), code)
        out.append(Send(peer, data))
        if not peer.reliable:
            self._done[key] = data
            self._done_expiry.append((now + 64 * self.options.t1, key))

    def _count(self, data: bytes, code: int) -> bytes:
        self.stats.count(self.stats.responses, code)
        return data

    def _forget_dialog(self, dialog: Dialog) -> None:
        self._dialogs.pop(dialog.local_tag, None)
        self._by_ref.pop(dialog.ref, None)


def _reason(end_reason: str) -> str:
    """`Reason: Q.850;cause=N;text="end_reason"` (RFC 3326); a cancelled INVITE's 487 says
    `SIP;cause=487;text="cancelled"` (Q.850 has no cause for it)."""
    if end_reason == "cancelled":
        return 'SIP;cause=487;text="cancelled"'
    return f'Q.850;cause={Q850.get(end_reason, 16)};text="{end_reason}"'


def _phrase(code: int, why: str) -> str:
    text = "".join(c for c in why if c.isprintable() and c not in "\r\n")
    return f"{msg.REASON_PHRASES.get(code, 'Error')} ({text[:100]})"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _uri(text: str) -> URI:
    try:
        return URI.parse(text)
    except ValueError:
        return URI.parse("sip:invalid")


def _caller_part(request: Request) -> str:
    """The user part of P-Asserted-Identity if present and readable, else of From ('' if none)."""
    for name in ("P-Asserted-Identity", "From"):
        value = request.headers.get(name)
        if value is None:
            continue
        try:
            return Address.parse(value.split(",")[0]).uri.user or ""
        except ValueError:
            continue
    return ""


def _remote_target(request: Request) -> str | None:
    """Where in-dialog requests to the caller go (RFC 3261 §12.1.1): its Contact's URI, else
    its From's; None when neither is a valid address (the INVITE gets a 400)."""
    try:
        if request.headers.get("Contact"):
            return str(request.contact[0].uri)
    except (ValueError, IndexError):
        pass
    try:
        return str(request.from_address.uri)
    except ValueError:
        return None
