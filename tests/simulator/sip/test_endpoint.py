"""The SIP endpoint's rules, sans-IO: hand-written messages in, at explicit instants."""

from __future__ import annotations

from rating_core import CallKind
from simulator.sip import Hangup, Peer, Setup

from .support import CALLER, codes, endpoint, header, invite, request, sent, to_tag_of

T1 = 0.5


def _answered(ep, now=0.0, **kw):
    """An INVITE admitted and answered at `now`: (setup, the 200's bytes)."""
    actions = ep.receive(invite(**kw), CALLER, now)
    assert codes(actions) == [100]
    setup = [a for a in actions if isinstance(a, Setup)][0]
    ep.bound(setup.ref, 41)
    ok = ep.answered(setup.ref, now + 0.001)
    assert codes(ok) == [200]
    return setup, sent(ok)[0]


def test_admitted_invite_gets_100_then_200_answering_the_first_offered_codec():
    ep = endpoint()
    setup, ok = _answered(ep)
    assert setup.call.to_number == 12125550100 and setup.call.org == 0 and setup.call.user == 0
    body = ok.split(b"\r\n\r\n", 1)[1]
    assert b"m=audio 40000 RTP/AVP 8\r\n" in body and b"c=IN IP4 127.0.0.1" in body
    assert header(ok, "Content-Type") == "application/sdp" and header(ok, "Contact")
    assert ep.dialogs == 1


def test_invite_without_sdp_gets_an_offer_in_the_200():
    ep = endpoint()
    _, ok = _answered(ep, body=b"")
    assert b"m=audio 40000 RTP/AVP 0 8" in ok


def test_retransmitted_invite_is_absorbed_one_admission_one_call():
    ep = endpoint()
    first = ep.receive(invite(), CALLER, 0.0)
    again = ep.receive(invite(), CALLER, 0.2)
    assert [type(a).__name__ for a in first].count("Setup") == 1
    assert not any(isinstance(a, Setup) for a in again) and codes(again) == [100]
    setup = [a for a in first if isinstance(a, Setup)][0]
    ok = sent(ep.answered(setup.ref, 0.3))[0]
    assert sent(ep.receive(invite(), CALLER, 0.4)) == [ok]  # after the answer: the 200 again
    assert ep.stats.retransmissions["request_absorbed"] == 2


def test_200_is_resent_at_t1_doubling_to_t2_until_the_ack():
    ep = endpoint()
    setup, ok = _answered(ep, now=0.0)
    resent = []
    for step in range(1, 40):
        now = step * 0.25
        if now == 6.0:
            tag = to_tag_of(ok)
            assert ep.receive(request("ACK", to_tag=tag, branch="z9hG4bK-ack"), CALLER, now) == []
        resent += [now for a in ep.timers_due(now) if a.data == ok]
    # sent at 0.001; resent at +0.5, +1.5, +3.5 (intervals 0.5, 1, 2), then the ACK at 6.0 stops it
    assert resent == [0.75, 1.75, 3.75]
    assert ep.stats.retransmissions["response_sent"] == 3


def test_no_ack_by_timer_h_hangs_up_the_call_at_that_instant_and_sends_bye():
    ep = endpoint()
    setup, ok = _answered(ep, now=1.0)
    actions = []
    now = 1.0
    while now < 40:
        now += 0.25
        actions += ep.timers_due(now)
    hangups = [a for a in actions if isinstance(a, Hangup)]
    assert hangups == [Hangup(41, 1.001 + 64 * T1)]
    byes = [d for d in sent(actions) if d.startswith(b"BYE ")]
    assert byes and 'text="no_ack"' in header(byes[0], "Reason")
    assert ep.stats.timeouts["no_ack"] == 1


def test_callers_bye_ends_the_call_and_is_answered_200():
    ep = endpoint()
    setup, ok = _answered(ep)
    tag = to_tag_of(ok)
    ep.receive(request("ACK", to_tag=tag, branch="z9hG4bK-a"), CALLER, 0.01)
    bye = request("BYE", to_tag=tag, branch="z9hG4bK-b", cseq=2)
    actions = ep.receive(bye, CALLER, 12.5)
    assert codes(actions) == [200] and Hangup(41, 12.5) in actions
    again = ep.receive(bye, CALLER, 12.9)  # a retransmitted BYE: the same 200, no second hang-up
    assert sent(again) == sent(actions)[:1] and not any(isinstance(a, Hangup) for a in again)
    assert ep.ended(setup.ref, "hangup", 12.6) == []
    assert ep.dialogs == 0


def test_cut_call_gets_our_bye_with_the_reason_resent_over_udp_until_answered():
    ep = endpoint()
    setup, ok = _answered(ep)
    ep.receive(request("ACK", to_tag=to_tag_of(ok), branch="z9hG4bK-a"), CALLER, 0.01)
    bye = sent(ep.ended(setup.ref, "dropped_balance_exhausted", 60.0))
    assert len(bye) == 1 and bye[0].startswith(b"BYE sip:caller@127.0.0.1:5061 SIP/2.0")
    assert header(bye[0], "Reason") == 'Q.850;cause=17;text="dropped_balance_exhausted"'
    assert header(bye[0], "Call-ID") == "c1" and "ft1" in header(bye[0], "To")
    assert sent(ep.timers_due(60.5)) == bye  # timer E: T1
    assert sent(ep.timers_due(61.0)) == []
    assert sent(ep.timers_due(61.5)) == bye  # then 2·T1
    branch = header(bye[0], "Via").split("branch=")[1].split(";")[0]
    response = (f"SIP/2.0 200 OK\r\nVia: {header(bye[0], 'Via')}\r\nFrom: {header(bye[0], 'From')}\r\n"
                f"To: {header(bye[0], 'To')}\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
    assert branch and ep.receive(response.encode(), CALLER, 61.6) == []
    assert sent(ep.timers_due(70.0)) == [] and ep.dialogs == 0


def test_bye_is_not_resent_over_tcp_and_given_up_after_timer_f():
    ep = endpoint()
    tcp = Peer("127.0.0.1", 40000, conn=7)
    actions = ep.receive(invite(), tcp, 0.0)
    setup = [a for a in actions if isinstance(a, Setup)][0]
    ep.bound(setup.ref, 9)
    ok = sent(ep.answered(setup.ref, 0.0))[0]
    ep.receive(request("ACK", to_tag=to_tag_of(ok), branch="z9hG4bK-a"), tcp, 0.01)
    assert len(sent(ep.ended(setup.ref, "simulation_end", 5.0))) == 1
    assert sent(ep.timers_due(5.0 + 64 * T1 - 0.01)) == []
    ep.timers_due(5.0 + 64 * T1)
    assert ep.stats.timeouts["bye_unanswered"] == 1 and ep.dialogs == 0


def test_cancel_while_ringing_gets_200_and_487_and_never_reaches_the_rating_core():
    ep = endpoint(ring_s=2.0)
    actions = ep.receive(invite(), CALLER, 0.0)
    assert codes(actions) == [100, 180] and not any(isinstance(a, Setup) for a in actions)
    cancel = ep.receive(request("CANCEL", branch="z9hG4bK-1"), CALLER, 1.0)
    assert codes(cancel) == [200, 487]
    assert ep.timers_due(3.0) == [] or not any(isinstance(a, Setup) for a in ep.timers_due(3.0))
    assert ep.dialogs == 0


def test_ringing_ends_with_the_setup_at_the_ring_deadline():
    ep = endpoint()
    actions = ep.receive(invite(extra="X-Callsim-Ring: 1500\r\n"), CALLER, 0.0)
    assert codes(actions) == [100, 180]
    assert ep.next_deadline() == 1.5
    assert [a.at for a in ep.timers_due(1.5) if isinstance(a, Setup)] == [1.5]


def test_cancel_crossing_the_setup_hangs_up_at_the_arrival_instant_then_487():
    ep = endpoint()
    actions = ep.receive(invite(), CALLER, 3.0)
    setup = [a for a in actions if isinstance(a, Setup)][0]
    ep.bound(setup.ref, 5)
    cancel = ep.receive(request("CANCEL", branch="z9hG4bK-1"), CALLER, 3.0004)
    assert codes(cancel) == [200] and Hangup(5, 3.0) in cancel  # billed nothing
    assert codes(ep.answered(setup.ref, 3.001)) == [487]


def test_cancel_after_the_answer_changes_nothing():
    ep = endpoint()
    setup, ok = _answered(ep)
    actions = ep.receive(request("CANCEL", branch="z9hG4bK-1"), CALLER, 0.5)
    assert codes(actions) == [200] and not any(isinstance(a, Hangup) for a in actions)


def test_cancel_of_an_unknown_transaction_is_481():
    assert codes(endpoint().receive(request("CANCEL", branch="z9hG4bK-x"), CALLER, 0.0)) == [481]


def test_requests_in_unknown_dialogs_or_from_elsewhere_get_481():
    ep = endpoint()
    setup, ok = _answered(ep)
    tag = to_tag_of(ok)
    assert codes(ep.receive(request("BYE", to_tag="nope", branch="z9hG4bK-b"), CALLER, 1.0)) == [481]
    assert codes(ep.receive(request("BYE", to_tag=tag, from_tag="other", branch="z9hG4bK-c"), CALLER, 1.0)) == [481]
    assert codes(ep.receive(request("BYE", to_tag=tag, branch="z9hG4bK-d"), Peer("10.9.0.1", 5061), 1.0)) == [481]
    assert codes(ep.receive(request("BYE", branch="z9hG4bK-e"), CALLER, 1.0)) == [481]
    assert ep.dialogs == 1


def test_reinvite_and_options_in_dialog_get_200_without_touching_billing():
    ep = endpoint()
    setup, ok = _answered(ep)
    tag = to_tag_of(ok)
    re_invite = ep.receive(invite(to_tag=tag, branch="z9hG4bK-re", cseq=2), CALLER, 1.0)
    options = ep.receive(request("OPTIONS", to_tag=tag, branch="z9hG4bK-op", cseq=3), CALLER, 1.1)
    assert codes(re_invite) == [200] and codes(options) == [200]
    assert not any(isinstance(a, (Setup, Hangup)) for a in re_invite + options)
    assert codes(ep.receive(request("OPTIONS", branch="z9hG4bK-o2"), CALLER, 1.2)) == [200]


def test_unsupported_methods_get_405_with_allow_and_unknown_ones_501():
    ep = endpoint()
    refused = ep.receive(request("REGISTER", branch="z9hG4bK-r"), CALLER, 0.0)
    assert codes(refused) == [405] and header(sent(refused)[0], "Allow") == "INVITE, ACK, BYE, CANCEL, OPTIONS"
    assert codes(ep.receive(request("FROBNICATE", branch="z9hG4bK-f"), CALLER, 0.0)) == [501]


def test_malformed_requests_get_400_when_answerable_else_are_dropped_and_counted():
    ep = endpoint()
    assert codes(ep.receive(invite(cseq_method="BYE"), CALLER, 0.0)) == [400]
    assert codes(ep.receive(invite(extra="a header line without colon\r\n"), CALLER, 0.0)) == [400]
    assert codes(ep.receive(invite(uri="http://example.com", branch="z9hG4bK-u"), CALLER, 0.0)) == [400]
    no_via = invite().replace(b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n", b"")
    assert ep.receive(no_via, CALLER, 0.0) == []
    assert ep.receive(b"\x00\xffgarbage", CALLER, 0.0) == []
    short = invite().replace(b"Content-Length: ", b"Content-Length: 9")
    assert codes(ep.receive(short, CALLER, 0.0)) == [400]
    kinds = {k: v for k, v in ep.stats.malformed.items() if v}
    assert kinds == {"bad_cseq": 1, "bad_header_line": 1, "bad_request_uri": 1, "missing_header": 1,
                     "not_sip": 1, "bad_content_length": 1}


def test_a_request_without_content_length_is_400_over_tcp_but_fine_over_udp():
    """RFC 3261 §20.14: Content-Length is mandatory over stream transports only."""
    ep = endpoint()
    bare = request("OPTIONS", uri="sip:127.0.0.1:5060").replace(b"Content-Length: 0\r\n", b"")
    assert b"Content-Length" not in bare
    tcp = Peer("127.0.0.1", 40000, conn=5)
    refused = sent(ep.receive(bare, tcp, 0.0))
    assert codes(ep.receive(bare, tcp, 0.0)) == [400] and b"Content-Length is required" in refused[0]
    assert ep.stats.malformed["missing_header"] == 2
    assert codes(ep.receive(bare, CALLER, 0.0)) == [200]
    assert ep.stats.malformed["missing_header"] == 2


def test_rating_core_refusals_map_to_their_codes_with_a_reason():
    for reason, code, cause in (("unroutable", 404, 3), ("not_licensed", 403, 57), ("blocked_no_balance", 402, 21)):
        ep = endpoint()
        setup = [a for a in ep.receive(invite(), CALLER, 0.0) if isinstance(a, Setup)][0]
        refusal = sent(ep.rejected(setup.ref, reason, 0.001))
        assert codes(ep.rejected(setup.ref, reason, 0.001)) == []  # once only
        assert refusal[0].startswith(f"SIP/2.0 {code} ".encode())
        assert header(refusal[0], "Reason") == f'Q.850;cause={cause};text="{reason}"'


def test_refusal_is_resent_until_its_ack_over_udp():
    ep = endpoint()
    setup = [a for a in ep.receive(invite(), CALLER, 0.0) if isinstance(a, Setup)][0]
    refusal = sent(ep.rejected(setup.ref, "blocked_no_balance", 0.0))
    assert sent(ep.timers_due(0.5)) == refusal
    ep.receive(request("ACK", to_tag=to_tag_of(refusal[0]), branch="z9hG4bK-1", cseq_method="INVITE"), CALLER, 0.6)
    assert sent(ep.timers_due(1.5)) == []


def test_routing_toll_free_conference_and_unknown_callers():
    ep = endpoint()
    tf = [a for a in ep.receive(invite(to="+18005550100", caller="+442071234567"), CALLER, 0.0)
          if isinstance(a, Setup)][0]
    assert tf.call.kind == CallKind.TOLL_FREE and tf.call.org == 0 and tf.call.user == -1 and tf.call.from_number == 442071234567
    conf = [a for a in ep.receive(invite(branch="z9hG4bK-2", call_id="c2", caller="alice",
                                         extra="X-Callsim-Conference: bob\r\n"), CALLER, 0.0)
            if isinstance(a, Setup)][0]
    assert conf.call.kind == CallKind.CONFERENCE_DIAL_OUT and conf.call.user == 1
    assert codes(ep.receive(invite(branch="z9hG4bK-3", call_id="c3", caller="mallory"), CALLER, 0.0)) == [404]
    assert codes(ep.receive(invite(branch="z9hG4bK-6", call_id="c6", caller="carol"), CALLER, 0.0)) == [403]
    assert codes(ep.receive(invite(branch="z9hG4bK-4", call_id="c4", to="helpdesk"), CALLER, 0.0)) == [404]
    assert codes(ep.receive(invite(branch="z9hG4bK-5", call_id="c5", caller="alice",
                                   extra="X-Callsim-Conference: carol\r\n"), CALLER, 0.0)) == [403]


def test_sdp_offer_without_audio_is_488():
    body = b"v=0\r\no=x 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n"
    assert codes(endpoint().receive(invite(body=body), CALLER, 0.0)) == [488]


def test_cached_responses_are_forgotten_after_timer_j_even_without_dialogs():
    ep = endpoint()
    options = request("OPTIONS", branch="z9hG4bK-o")
    first = sent(ep.receive(options, CALLER, 0.0))
    assert ep.next_deadline() == 64 * T1
    assert sent(ep.receive(options, CALLER, 1.0)) == first  # absorbed, the same 200
    ep.timers_due(64 * T1)
    assert ep.next_deadline() is None
    assert sent(ep.receive(options, CALLER, 40.0)) != first  # a new transaction: a new To tag


def test_lost_tcp_connection_hangs_up_its_calls_and_forgets_its_dialogs():
    ep = endpoint()
    tcp = Peer("127.0.0.1", 40000, conn=3)
    answered = [a for a in ep.receive(invite(), tcp, 0.0) if isinstance(a, Setup)][0]
    ep.bound(answered.ref, 1)
    ep.answered(answered.ref, 0.0)
    waiting = [a for a in ep.receive(invite(call_id="c2", branch="z9hG4bK-2"), tcp, 1.0) if isinstance(a, Setup)][0]
    ep.bound(waiting.ref, 2)
    assert ep.connection_lost(3, 5.0) == [Hangup(1, 5.0), Hangup(2, 1.0)]  # the waiting one: billed nothing
    assert ep.ended(answered.ref, "hangup", 5.0) == [] and ep.rejected(waiting.ref, "unroutable", 5.0) == []
    assert ep.dialogs == 0


def test_stop_answers_invites_still_ringing_with_503():
    ep = endpoint(ring_s=30.0)
    assert codes(ep.receive(invite(), CALLER, 0.0)) == [100, 180]
    assert codes(ep.stop(1.0)) == [503]
    assert codes(ep.receive(invite(call_id="c2", branch="z9hG4bK-2"), CALLER, 1.1)) == [503]
    assert not any(isinstance(a, Setup) for a in ep.timers_due(31.0)) and ep.dialogs == 0
