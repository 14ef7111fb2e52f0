"""The SIP -> call mapping and the identity look-ups behind it (simulator.sip._identities)."""

from __future__ import annotations

import pytest

from rating_core import CallKind
from simulator.scenario import parse_scenario
from simulator.sip import AUTHENTICATE, SipCall, SipConflict, SipIdentities, SipRefusal, parse_user_number
from tests.simulator.scenario.test_scenario_sip import CONTOSO, FABRIKAM, HEAD

CONTOSO_ORG, FABRIKAM_ORG = 0, 1
ALICE, SALES_1, SALES_3, BOB = 0, 1, 3, 4
DIALLED = 12125550100


@pytest.fixture
def ids() -> SipIdentities:
    return SipIdentities.from_scenario(parse_scenario(HEAD + CONTOSO + FABRIKAM), {})


def outbound(org: int, user: int, from_number: int = 0, to: int = DIALLED) -> SipCall:
    return SipCall(org, user, int(CallKind.OUTBOUND), to, from_number)


@pytest.mark.parametrize(("text", "digits"), [
    ("+14155550100", 14155550100), ("14155550100", 14155550100),
    ("+1-415-555-0100", 14155550100), ("+1(415)555.0100", 14155550100),
    ("+14155550100;npdi", 14155550100), ("alice", None), ("+0123", None), ("1", None),
    ("+1234567890123456", None), ("", None), ("١٢٣٤", None),
])
def test_user_parts_are_read_as_e164_with_or_without_plus(text: str, digits: int | None) -> None:
    assert parse_user_number(text) == digits


def test_users_are_found_by_number_or_sip_user_name_within_their_org(ids: SipIdentities) -> None:
    assert ids.user_in(CONTOSO_ORG, "alice") == ALICE
    assert ids.user_in(CONTOSO_ORG, "+14155550100") == ALICE
    assert ids.user_in(CONTOSO_ORG, "sales-0001") == SALES_1
    assert ids.user_in(CONTOSO_ORG, "14155551002") == SALES_3  # member k: base + k - 1
    assert ids.user_in(CONTOSO_ORG, "14155551003") is None  # past the group
    assert ids.user_in(FABRIKAM_ORG, "1001") == BOB
    assert ids.user_in(FABRIKAM_ORG, "bob") is None  # sip_user replaces the id
    assert ids.user_in(FABRIKAM_ORG, "alice") is None
    assert ids.number_owner(14155551001) == (CONTOSO_ORG, 2)
    assert ids.user_number(SALES_3) == 14155551002 and ids.user_number(BOB) == 0


def test_orgs_are_found_by_digest_username_and_trusted_address(ids: SipIdentities) -> None:
    creds = ids.by_username("contoso-pbx")
    assert creds is not None and (creds.org, creds.password, creds.realm) == (0, "secret", "callsim")
    assert ids.by_username("contoso") is None
    assert ids.credentials(FABRIKAM_ORG).realm == "fabrikam.example"  # type: ignore[union-attr]
    assert ids.without_password() == ["fabrikam"]
    assert ids.trusted_org("127.0.0.1") == CONTOSO_ORG
    assert ids.trusted_org("::ffff:127.0.0.1") == CONTOSO_ORG
    assert ids.trusted_org("10.200.3.4") == CONTOSO_ORG
    assert ids.trusted_org("127.0.0.2") is None
    assert ids.trusted_org("::1") is None
    assert ids.trusted_org("not an address") is None


def test_the_environment_password_wins_over_the_scenario(ids: SipIdentities) -> None:
    scenario = parse_scenario(HEAD + CONTOSO + FABRIKAM)
    env = {"CALLSIM_SIP_PASSWORD_CONTOSO": "from-env", "CALLSIM_SIP_PASSWORD_FABRIKAM": "f"}
    ids = SipIdentities.from_scenario(scenario, env)
    assert ids.credentials(CONTOSO_ORG).password == "from-env"  # type: ignore[union-attr]
    assert ids.without_password() == []


def test_the_challenge_realm_is_the_callers_org_when_it_is_known(ids: SipIdentities) -> None:
    assert ids.realm_for("1001") == "fabrikam.example"
    assert ids.realm_for("alice") == "callsim"
    assert ids.realm_for("stranger") == "callsim"


def test_outbound_calls_come_from_the_authenticated_orgs_user(ids: SipIdentities) -> None:
    assert ids.call_for("alice", "+12125550100", None, CONTOSO_ORG) == outbound(0, ALICE, 14155550100)
    assert ids.call_for("+14155551002", "12125550100", None, CONTOSO_ORG) == \
        outbound(0, SALES_3, 14155551002)
    assert ids.call_for("1001", "+442071234567", None, FABRIKAM_ORG) == \
        outbound(1, BOB, 0, to=442071234567)


def test_conference_header_names_the_organiser(ids: SipIdentities) -> None:
    dial_out = int(CallKind.CONFERENCE_DIAL_OUT)
    assert ids.call_for("bridge", "12125550100", "sales-0001", CONTOSO_ORG) == \
        SipCall(0, SALES_1, dial_out, DIALLED, 14155551000)
    # An organiser without a number: the bridge's number, when the From has one.
    assert ids.call_for("+15555550000", "12125550100", "1001", FABRIKAM_ORG) == \
        SipCall(1, BOB, dial_out, DIALLED, 15555550000)
    assert ids.call_for("alice", "12125550100", "sales-0001", FABRIKAM_ORG).status == 403  # type: ignore[union-attr]


def test_toll_free_calls_need_no_credentials_and_bill_the_numbers_owner(ids: SipIdentities) -> None:
    toll_free = int(CallKind.TOLL_FREE)
    assert ids.call_for("+442071234567", "+18005550100", None, None) == \
        SipCall(0, -1, toll_free, 18005550100, 442071234567)
    # Another org's authenticated user calls it: still the owner's toll-free call.
    assert ids.call_for("+14155550100", "18005550100", None, FABRIKAM_ORG) == \
        SipCall(0, -1, toll_free, 18005550100, 14155550100)
    # A caller named by SIP user name is rated by their number.
    assert ids.call_for("alice", "18005550100", None, CONTOSO_ORG) == \
        SipCall(0, -1, toll_free, 18005550100, 14155550100)
    refusal = ids.call_for("anonymous", "18005550100", None, None)
    assert isinstance(refusal, SipRefusal) and refusal.status == 404


@pytest.mark.parametrize(("caller", "dialled", "org", "status"), [
    ("alice", "12125550100", None, 407),  # no credentials, not trusted
    ("nobody", "12125550100", None, 407),  # nothing is revealed before authentication
    ("alice", "12125550100", FABRIKAM_ORG, 403),  # another org's user, by name
    ("+14155550100", "12125550100", FABRIKAM_ORG, 403),  # ... by number
    ("1001", "12125550100", CONTOSO_ORG, 403),
    ("nobody", "12125550100", CONTOSO_ORG, 404),
    ("+19999999999", "12125550100", CONTOSO_ORG, 404),
    ("+18005550100", "12125550100", CONTOSO_ORG, 404),  # a toll-free number is no user
    ("alice", "service", CONTOSO_ORG, 404),  # the dialled user is not a number
])
def test_refusals(ids: SipIdentities, caller: str, dialled: str, org: int | None, status: int) -> None:
    refusal = ids.call_for(caller, dialled, None, org)
    assert isinstance(refusal, SipRefusal) and refusal.status == status
    if status == 407:
        assert refusal == AUTHENTICATE


def test_a_name_two_orgs_use_is_forbidden_to_a_third_and_has_the_default_realm() -> None:
    text = (HEAD + CONTOSO.replace('number = "+14155550100"', 'sip_user = "1001"') + FABRIKAM
            + '\n[[orgs]]\nid = "wingtip"\n[orgs.sip]\nusername = "w"\n')
    ids = SipIdentities.from_scenario(parse_scenario(text), {})
    assert ids.call_for("1001", "12125550100", None, 2).status == 403  # type: ignore[union-attr]
    assert ids.realm_for("1001") == "callsim"


def test_two_orgs_with_one_toll_free_number_cannot_serve_sip() -> None:
    text = HEAD + CONTOSO + FABRIKAM.replace('id = "fabrikam"',
                                             'id = "fabrikam"\ntoll_free_numbers = ["+18005550100"]')
    with pytest.raises(SipConflict, match="orgs 'contoso' and 'fabrikam' both have the toll-free "
                                          r"number \+18005550100"):
        SipIdentities.from_scenario(parse_scenario(text), {})


def test_two_orgs_with_one_password_variable_cannot_serve_sip() -> None:
    text = HEAD + CONTOSO + FABRIKAM.replace('id = "fabrikam"', 'id = "CONTOSO"')
    with pytest.raises(SipConflict, match="CALLSIM_SIP_PASSWORD_CONTOSO"):
        SipIdentities.from_scenario(parse_scenario(text), {})


def test_caller_names_one_user_of_one_org_or_nobody() -> None:
    text = HEAD + CONTOSO.replace('number = "+14155550100"', 'sip_user = "1001"') + FABRIKAM
    ids = SipIdentities.from_scenario(parse_scenario(text), {})
    assert ids.caller("+14155551000") == (CONTOSO_ORG, SALES_1)
    assert ids.caller("sales-0003") == (CONTOSO_ORG, SALES_3)
    assert ids.caller("1001") is None  # both orgs have a 1001
    assert ids.caller("+18005550100") is None  # a toll-free number is no user
    assert ids.user_in_org(FABRIKAM_ORG, "1001") == BOB


def test_passwords_stay_out_of_reprs(ids: SipIdentities) -> None:
    scenario = parse_scenario(HEAD + CONTOSO)
    assert "secret" not in repr(scenario.sip) and "secret" not in repr(ids.by_username("contoso-pbx"))
