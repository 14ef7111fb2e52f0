"""Per-org digest authentication of INVITEs (407, 403, trusted addresses), sans-IO."""

from __future__ import annotations

import pytest

from simulator.sip import DigestAuth, Peer, Setup, authorization

from .support import CONTOSO, FABRIKAM, OUTSIDER, codes, endpoint, header, invite, request, sent, to_tag_of

URI = "sip:+12125550100@127.0.0.1:5060"


def _challenge(ep, now=0.0, **kw):
    actions = ep.receive(invite(**kw), OUTSIDER, now)
    assert codes(actions) == [407]
    response = sent(actions)[0]
    values = [line.split(": ", 1)[1] for line in response.decode().split("\r\n")
              if line.startswith("Proxy-Authenticate: ")]
    ep.receive(request("ACK", to_tag=to_tag_of(response), branch=kw.get("branch", "z9hG4bK-1"),
                       cseq_method="INVITE", call_id=kw.get("call_id", "c1")), OUTSIDER, now)
    return values


def _authorized(ep, challenge, credentials, now=0.1, nc=1, call_id="c1", branch="z9hG4bK-2", realm=None, **kw):
    auth = authorization(challenge, *credentials, "INVITE", kw.pop("uri", URI), "cn0", nc, realm=realm)
    return ep.receive(invite(call_id=call_id, branch=branch, cseq=2,
                             extra=f"Proxy-Authorization: {auth}\r\n", **kw), OUTSIDER, now)


@pytest.mark.parametrize("algorithm", [0, 1])
def test_invite_is_challenged_then_admitted_with_the_orgs_credentials(algorithm):
    ep = endpoint()
    values = _challenge(ep)
    assert 'algorithm=MD5' in values[0] and 'algorithm=SHA-256' in values[1] and 'qop="auth"' in values[0]
    assert 'realm="contoso"' in values[0]
    actions = _authorized(ep, values[algorithm], CONTOSO)
    assert codes(actions) == [100] and any(isinstance(a, Setup) for a in actions)


def test_wrong_password_is_403_and_counted():
    ep = endpoint()
    values = _challenge(ep)
    actions = _authorized(ep, values[0], ("contoso-pbx", "guess"))
    assert codes(actions) == [403] and not any(isinstance(a, Setup) for a in actions)
    assert ep.stats.auth_failures == {"bad_response": 1}


def test_another_orgs_credentials_cannot_place_this_orgs_call():
    ep = endpoint()
    fab = _challenge(ep, caller="+442071234567")  # fabrikam's realm and nonce
    mine = _challenge(ep, branch="z9hG4bK-9", call_id="c9")  # contoso's
    assert 'realm="fabrikam"' in fab[0] and 'realm="contoso"' in mine[0]
    # fabrikam's valid credentials, with a nonce carol obtained, placing contoso's alice's call
    assert codes(_authorized(ep, fab[0], FABRIKAM)) == [403]
    # contoso's username in fabrikam's realm
    assert codes(_authorized(ep, fab[0], CONTOSO, call_id="c2", branch="z9hG4bK-2b")) == [403]
    # fabrikam's nonce under contoso's realm and password: a nonce not issued in that realm
    assert codes(_authorized(ep, fab[0], CONTOSO, call_id="c3", branch="z9hG4bK-3", realm="contoso")) == [403]
    assert codes(_authorized(ep, mine[0], ("nobody", "x"), call_id="c7", branch="z9hG4bK-7")) == [403]
    assert ep.stats.auth_failures == {"wrong_realm": 1, "bad_nonce": 2, "unknown_user": 1}
    assert codes(_authorized(ep, mine[0], CONTOSO, call_id="c4", branch="z9hG4bK-4")) == [100]
    # contoso's own nonce, obtained by alice, used for bob: not issued to that caller
    assert codes(_authorized(ep, mine[0], CONTOSO, nc=2, call_id="c5", branch="z9hG4bK-5", caller="bob")) == [403]
    assert ep.stats.auth_failures["bad_nonce"] == 3


def test_replayed_nonce_count_is_refused():
    ep = endpoint()
    values = _challenge(ep)
    assert codes(_authorized(ep, values[0], CONTOSO)) == [100]
    assert codes(_authorized(ep, values[0], CONTOSO, call_id="c5", branch="z9hG4bK-5")) == [403]
    assert codes(_authorized(ep, values[0], CONTOSO, nc=2, call_id="c6", branch="z9hG4bK-6")) == [100]
    assert ep.stats.auth_failures == {"replay": 1}


def test_expired_nonce_is_challenged_again_as_stale_not_counted():
    ep = endpoint(nonce_ttl_s=30.0)
    values = _challenge(ep)
    actions = _authorized(ep, values[0], CONTOSO, now=31.0)
    assert codes(actions) == [407] and "stale=true" in header(sent(actions)[0], "Proxy-Authenticate")
    assert ep.stats.auth_failures == {}


def test_digest_uri_must_be_the_request_uri_or_its_host_and_port():
    ep = endpoint()
    values = _challenge(ep)
    assert codes(_authorized(ep, values[0], CONTOSO, uri="sip:+19995550100@127.0.0.1")) == [403]
    assert ep.stats.auth_failures == {"bad_params": 1}
    # SIPp 3.6's digest-uri: the server's address
    assert codes(_authorized(ep, values[0], CONTOSO, uri="sip:127.0.0.1:5060", call_id="c8",
                             branch="z9hG4bK-8")) == [100]


def test_trusted_address_skips_the_challenge():
    ep = endpoint()
    actions = ep.receive(invite(caller="+442071234567"), Peer("10.9.3.4", 5060), 0.0)
    assert codes(actions) == [100]


def test_unknown_algorithm_list_is_refused_at_construction():
    with pytest.raises(ValueError):
        DigestAuth(b"x", algorithms=("SHA-512-256",))


def test_unauthenticated_invites_leave_no_state_behind():
    ep = endpoint()
    for i in range(50):
        assert codes(ep.receive(invite(call_id=f"x{i}", branch=f"z9hG4bK-x{i}"), OUTSIDER, 0.0)) == [407]
    auth = authorization(_challenge(ep)[0], "contoso-pbx", "nope", "INVITE", URI, "c")
    refused = ep.receive(invite(call_id="y", branch="z9hG4bK-y", extra=f"Proxy-Authorization: {auth}\r\n"),
                         OUTSIDER, 0.0)
    assert codes(refused) == [403]
    assert ep.next_deadline() is None and ep.dialogs == 0  # no transaction, no timer
