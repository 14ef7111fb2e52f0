"""The export's vocabulary: its columns, and each mapping to callsim and back."""

from __future__ import annotations

import pytest

from rating_core import LICENSES
from simulator import usage


def test_columns_are_the_exports_twenty_in_order() -> None:
    assert usage.EXPORT_COLUMNS[0] == "UsageId" and usage.EXPORT_COLUMNS[-1] == "Capability"
    assert len(usage.EXPORT_COLUMNS) == 20
    assert usage.EXPORT_COLUMNS.index("Domestic/International") == 10
    assert usage.EXPORT_COLUMNS.index("Start Time") == 13
    assert set(usage.GRAPH_FIELDS.values()) == set(usage.EXPORT_COLUMNS)


def test_header_has_the_mark_and_a_crlf() -> None:
    assert usage.EXPORT_HEADER.startswith(b"\xef\xbb\xbfUsageId,Call ID,Conference ID,")
    assert usage.EXPORT_HEADER.endswith(b",Currency,Capability\r\n")


@pytest.mark.parametrize("call_type", ["domestic", "international", "conference_dial_out", "toll_free"])
def test_each_callsim_call_type_reads_back_as_itself(call_type: str) -> None:
    where = usage.domestic_international(call_type, "US", "US" if call_type != "international" else "GB")
    teams = usage.CALL_TYPE_TO_TEAMS[call_type]
    assert usage.callsim_call_type(teams, usage.number_type(call_type), where) == call_type


def test_a_conference_dial_out_abroad_is_international() -> None:
    assert usage.domestic_international("conference_dial_out", "US", "GB") == "International"
    assert usage.domestic_international("toll_free", "", "") == ""


@pytest.mark.parametrize("call_type", sorted(usage.OUTBOUND_CALL_TYPES))
def test_every_outbound_leg_is_rated_by_its_domestic_international(call_type: str) -> None:
    assert usage.callsim_call_type(call_type, "Subscriber", " domestic ") == "domestic"
    assert usage.callsim_call_type(call_type.upper(), "", "INTERNATIONAL") == "international"


@pytest.mark.parametrize("call_type", ["user_in", "conf_in", "ucap_in"])
def test_inbound_is_toll_free_only_on_a_toll_free_number(call_type: str) -> None:
    for spelling in ("Toll Free", "toll-free", "TollFree", "Service Toll-Free", "toll_free"):
        assert usage.callsim_call_type(call_type, spelling, "") == "toll_free"
    assert usage.callsim_call_type(call_type, "Subscriber", "") is None
    assert usage.callsim_call_type(call_type, "Service", "Domestic") is None


def test_a_bots_outbound_call_is_not_rated() -> None:
    assert usage.callsim_call_type("ucap_out", "Service", "Domestic") is None
    assert usage.NOT_RATED_CALL_TYPES <= usage.TEAMS_CALL_TYPES


@pytest.mark.parametrize(("args", "column"), [
    (("dr_out", "", "Domestic"), "Call Type"),
    (("user_out", "", ""), "Domestic/International"),
    (("user_in", "Mobile", ""), "Number Type"),
])
def test_unknown_values_name_their_column(args: tuple[str, str, str], column: str) -> None:
    with pytest.raises(usage.UnknownValue, match=f"^{column}: unknown value") as caught:
        usage.callsim_call_type(*args)
    assert caught.value.column == column


def test_every_capability_maps_to_callsim_licences() -> None:
    for capability, licenses in usage.CAPABILITY_LICENSES.items():
        assert licenses and licenses <= LICENSES, capability
        assert usage.licenses_for(f" {capability.lower()} ") == licenses
    assert set(usage.CAPABILITY_DOMESTIC_MINUTES) == {"MCOPSTN5", "MCOPSTN6"}
    with pytest.raises(usage.UnknownValue, match="Capability: unknown value 'MCOFOO'"):
        usage.licenses_for("MCOFOO")


@pytest.mark.parametrize(("call_type", "pool", "licenses", "expected"), [
    ("toll_free", "", frozenset(), "MCOPSTNPP"),
    ("domestic", "domestic", {"phone_system", "domestic_calling_plan"}, "MCOPSTN1"),
    ("domestic", "domestic", {"phone_system", "international_calling_plan"}, "MCOPSTN2"),
    ("international", "international", {"phone_system", "international_calling_plan"}, "MCOPSTN2"),
    ("international", "", {"phone_system", "domestic_calling_plan", "communications_credits"}, "MCOPSTNPP"),
    ("international", "", {"phone_system", "domestic_calling_plan"}, "MCOPSTN1"),
    ("conference_dial_out", "dial_out", {"audio_conferencing"}, "MCOMEETADD"),
    ("conference_dial_out", "", {"audio_conferencing", "communications_credits"}, "MCOPSTNPP"),
    ("conference_dial_out", "", {"audio_conferencing"}, "MCOMEETADD"),
])
def test_capability_is_the_licence_that_paid(call_type: str, pool: str, licenses: set[str], expected: str) -> None:
    assert usage.capability(call_type, pool, frozenset(licenses)) == expected


def test_capability_gives_back_the_licences_that_admitted_and_paid() -> None:
    # a domestic-plan user with credits: pool calls name the plan, credit-paid ones the credits
    held = frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})
    named = {usage.capability("domestic", "domestic", held), usage.capability("international", "", held)}
    assert frozenset().union(*(usage.licenses_for(c) for c in named)) == held


def test_upn_and_user_id_are_inverse() -> None:
    for user in ("alice", "sales-0001", "o'brien, pat", "a@b"):
        assert usage.user_id_from_upn(usage.upn(user, usage.default_domain("contoso"))) == user
    assert usage.default_domain("contoso") == "contoso.onmicrosoft.com"
    assert usage.user_id_from_upn(" bob ") == "bob"


def test_numbers_with_or_without_plus() -> None:
    assert usage.number_digits("+12125550100") == usage.number_digits(" 12125550100") == 12125550100
    assert usage.number_digits("") == 0
    for bad in ("+1 212", "abc", "+1234567890123456", "+-1"):
        with pytest.raises(ValueError):
            usage.number_digits(bad)


def test_time_is_utc_with_seven_digits_and_reads_back() -> None:
    text = usage.format_time(1_793_491_210_123)
    assert text == "2026-11-01T00:00:10.1230000Z"
    assert int(usage.parse_time(text).timestamp() * 1000) == 1_793_491_210_123
    assert usage.parse_time("2026-11-01T01:00:10.123+01:00") == usage.parse_time(text)
    with pytest.raises(ValueError, match="no UTC offset"):
        usage.parse_time("2026-11-01T00:00:10")


@pytest.mark.parametrize(("micro", "text"), [
    (0, "0.00"), (4_999, "0.00"), (5_000, "0.01"), (1_234_999, "1.23"), (1_235_000, "1.24"),
    (120_000_000, "120.00"), (-5_000, "-0.01"), (-4_999, "0.00"),
])
def test_charge_has_two_decimals_half_up(micro: int, text: str) -> None:
    assert usage.charge_text(micro) == text


def test_country_names_both_ways() -> None:
    for code, name in (("US", "United States"), ("GB", "United Kingdom"), ("DE", "Germany"), ("KR", "South Korea")):
        assert usage.destination_dialed(code) == name
        assert usage.country_code(name) == code
    assert usage.destination_dialed("") == "" and usage.destination_dialed("ZZ") == "ZZ"
    assert usage.country_code("Atlantis") is None


def test_file_names() -> None:
    assert usage.export_file_name("quickstart") == "PSTN.calls.quickstart.csv"
    assert usage.export_file_name("a/b:c") == "PSTN.calls.a_b_c.csv"
