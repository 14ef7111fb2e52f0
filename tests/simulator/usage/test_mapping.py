"""The export's vocabulary in callsim's terms: call types, licences, user and org ids."""

from __future__ import annotations

from collections import Counter

import pytest

from simulator.usage import call_type_kind, user_ids, user_licenses
from simulator.usage._mapping import SKIPPED_BOT, SKIPPED_INBOUND, org_id


@pytest.mark.parametrize(("row", "expected"), [
    (("user_out", "Subscriber", "Domestic"), ("domestic", None)),
    (("USER_OUT", "", "international"), ("international", None)),
    (("user_out_transfer", "", "Domestic"), ("domestic", None)),
    (("user_out_forwarding", "", "International"), ("international", None)),
    (("user_out_conf", "", "Domestic"), ("domestic", None)),
    (("conf_out", "Service", ""), ("conference_dial_out", None)),
    (("user_in", "Toll Free", ""), ("toll_free", None)),
    (("user_in", "toll_free", ""), ("toll_free", None)),
    (("conf_in", "Toll-Free", ""), ("toll_free", None)),
    (("ucap_in", "TollFree", ""), ("toll_free", None)),
    (("user_in", "Subscriber", ""), (None, SKIPPED_INBOUND)),
    (("conf_in", "Service", ""), (None, SKIPPED_INBOUND)),
    (("ucap_out", "Service", ""), (None, SKIPPED_BOT)),
    (("dr_out", "", "Domestic"), (None, None)),  # unknown to the Calling Plans export: a warning
    (("emergency", "", ""), (None, None)),
    (("user_in", "Premium", ""), (None, None)),  # an unknown Number Type on an inbound row
])
def test_call_types_map_as_the_docs_table_says(row, expected) -> None:
    assert call_type_kind(*row) == expected


def test_licences_come_from_capabilities_and_a_plan_is_assumed_for_callers_without_one() -> None:
    assert user_licenses({"MCOPSTN1", "MCOPSTNPP"}, True) == (
        ["phone_system", "domestic_calling_plan", "communications_credits"], False)
    assert user_licenses({"MCOPSTN2"}, True) == (["phone_system", "international_calling_plan"], False)
    assert user_licenses({"mcopstn5"}, True) == (["phone_system", "domestic_calling_plan"], False)
    assert user_licenses({"MCOMEETADD"}, False) == (["audio_conferencing"], False)
    assert user_licenses({"MCOPSTNPP"}, True) == (
        ["phone_system", "domestic_calling_plan", "communications_credits"], True)
    assert user_licenses({"NOT_A_SKU"}, False) == ([], False)


def test_user_ids_are_safe_unique_and_stable() -> None:
    ids = user_ids(["alice@contoso.com", "alice@fabrikam.com", "Bob O'Neil@contoso.com",
                    "staff-0001@contoso.onmicrosoft.com", "alice-2@contoso.com"])
    assert ids["alice@contoso.com"] == "alice"
    assert ids["alice-2@contoso.com"] == "alice-2"
    assert ids["alice@fabrikam.com"] == "alice-3"  # "alice-2" is another UPN's own id
    assert ids["Bob O'Neil@contoso.com"] == "Bob-O-Neil"
    assert ids["staff-0001@contoso.onmicrosoft.com"] == "staff-0001"  # callsim's own ids come back
    assert len(set(ids.values())) == len(ids)


def test_org_id_is_the_most_common_domain_first_label() -> None:
    assert org_id(Counter({"contoso.onmicrosoft.com": 5, "fabrikam.com": 2})) == "contoso"
    assert org_id(Counter()) == "org"
