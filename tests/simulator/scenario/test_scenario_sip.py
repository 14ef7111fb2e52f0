"""SIP identities in scenario files: numbers, SIP user names and `[orgs.sip]`, checked across
tables with one line per mistake."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from simulator.scenario import NumberBlock, OrgSip, ScenarioError, parse_scenario
from tests.scenarios import START, US_TARIFF, table

# One simulation and one US tariff: the tables SIP identities are checked beside.
HEAD = (table("[simulation]", {"name": "sip", "seed": 1, "start": START, "duration": "1h",
                               "currency": "USD"})
        + "\n" + table("[[tariff]]", US_TARIFF))

CONTOSO = """
[[orgs]]
id = "contoso"
toll_free_numbers = ["+18005550100"]

[orgs.sip]
username = "contoso-pbx"
password = "secret"
trusted = ["127.0.0.1", "10.0.0.0/8"]

[[orgs.users]]
id = "alice"
country = "US"
licenses = ["phone_system", "domestic_calling_plan"]
number = "+14155550100"

[[orgs.users]]
group = "sales"
count = 3
country = "US"
licenses = ["phone_system", "domestic_calling_plan"]
number_base = "+14155551000"
"""

FABRIKAM = """
[[orgs]]
id = "fabrikam"

[orgs.sip]
username = "fabrikam-pbx"
realm = "fabrikam.example"

[[orgs.users]]
id = "bob"
sip_user = "1001"
country = "US"
licenses = ["e5"]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text)
    return [str(p) for p in err.value.problems]


def test_numbers_names_and_credentials_are_loaded() -> None:
    sip = parse_scenario(HEAD + CONTOSO + FABRIKAM).sip
    # alice is user 0; sales-0001..0003 are users 1..3, numbered from the base; bob is user 4.
    assert sip.numbers == (NumberBlock(14155550100, 1, 0, 0), NumberBlock(14155551000, 3, 0, 1))
    assert sip.user_names == {4: "1001"}
    assert sip.orgs == (
        OrgSip("contoso-pbx", "secret", "callsim",
               (ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8"))),
        OrgSip("fabrikam-pbx", None, "fabrikam.example", ()),
    )


def test_a_scenario_without_sip_keys_has_no_identities() -> None:
    text = HEAD + CONTOSO.replace('number = "+14155550100"\n', "").replace(
        'number_base = "+14155551000"\n', "")
    text = text[: text.index("[orgs.sip]")] + text[text.index("[[orgs.users]]"):]
    sip = parse_scenario(text).sip
    assert sip.numbers == () and sip.user_names == {} and sip.orgs == (None,)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('number = "+14155550100"', 'number = "14155550100"',
     'orgs[0].users[0].number: expected an E.164 number like "+12125550100" (+ and 2 to 15 '
     'digits), got "14155550100"'),
    ('number = "+14155550100"', 'number = "+14155551002"',
     "orgs[0].users[1].number_base: number +14155551002 is also given at "
     "orgs[0].users[0].number: every number names one user or org"),
    ('number = "+14155550100"', 'number = "+18005550100"',
     "orgs[0].users[0].number: number +18005550100 is also given at "
     "orgs[0].toll_free_numbers[0]: every number names one user or org"),
    ('number_base = "+14155551000"', 'number_base = "+99999999999998"',
     'orgs[0].users[1].number_base: the group\'s last number +100000000000000 has more digits '
     'than "+99999999999998": start lower'),
    ('number_base = "+14155551000"', 'number = "+14155551000"',
     "orgs[0].users[1].number: not for a group: use number_base"),
    ('number = "+14155550100"', 'number_base = "+14155550100"',
     "orgs[0].users[0].number_base: not for a single user: use number"),
    ('number_base = "+14155551000"', 'number_base = "+14155551000"\nsip_user = "s"',
     "orgs[0].users[1].sip_user: only for a single user (group members' SIP user names are "
     "their user ids)"),
    ('username = "contoso-pbx"', 'username = "fabrikam-pbx"',
     'orgs[1].sip.username: duplicate SIP username "fabrikam-pbx" (first at '
     'orgs[0].sip.username): one credential opens one org'),
    ('username = "contoso-pbx"', 'username = "a b"',
     "orgs[0].sip.username: expected a SIP user name: 1 to 64 letters, digits or "
     "-_.!~*'()&=+$,?/, got \"a b\""),
    ('trusted = ["127.0.0.1", "10.0.0.0/8"]', 'trusted = ["10.0.0.1/8"]',
     'orgs[0].sip.trusted[0]: expected an address or network like "10.0.0.0/8", got '
     '"10.0.0.1/8" (10.0.0.1/8 has host bits set)'),
    ('password = "secret"', 'pasword = "secret"', "orgs[0].sip.pasword: unknown key"),
])
def test_each_identity_mistake_is_one_line_at_its_place(old: str, new: str, expected: str) -> None:
    assert (HEAD + CONTOSO + FABRIKAM).count(old) == 1
    assert problems((HEAD + CONTOSO + FABRIKAM).replace(old, new)) == [expected]


def test_a_network_trusted_for_two_orgs_is_refused_where_it_overlaps() -> None:
    text = HEAD + CONTOSO + FABRIKAM.replace('realm = "fabrikam.example"',
                                             'trusted = ["10.1.0.0/16", "192.168.0.1"]')
    assert problems(text) == [
        "orgs[1].sip.trusted[0]: 10.1.0.0/16 is also trusted for another org (at "
        "orgs[0].sip.trusted[1]): one address, one org"]


def test_one_org_may_list_nested_networks() -> None:
    text = (HEAD + CONTOSO).replace('"10.0.0.0/8"]', '"10.0.0.0/8", "10.2.0.0/16", "::1"]')
    assert len(parse_scenario(text).sip.orgs[0].trusted) == 4


def test_sip_user_may_not_be_another_users_id_nor_repeat() -> None:
    text = HEAD + CONTOSO + FABRIKAM.replace('sip_user = "1001"', 'sip_user = "carol"') + """
[[orgs.users]]
id = "carol"
country = "US"
licenses = ["e5"]

[[orgs.users]]
id = "dave"
sip_user = "eve"
country = "US"
licenses = ["e5"]

[[orgs.users]]
id = "frank"
sip_user = "eve"
country = "US"
licenses = ["e5"]
"""
    assert problems(text) == [
        'orgs[1].users[0].sip_user: "carol" is the user id of another user ("carol"): SIP user '
        "names default to user ids",
        'orgs[1].users[3].sip_user: duplicate sip_user "eve" (first at orgs[1].users[2].sip_user)',
    ]


def test_the_same_sip_user_in_two_orgs_is_allowed() -> None:
    text = HEAD + CONTOSO.replace('number = "+14155550100"', 'sip_user = "1001"') + FABRIKAM
    assert parse_scenario(text).sip.user_names == {0: "1001", 4: "1001"}


def test_sip_table_needs_a_username_or_trusted_addresses() -> None:
    text = HEAD + FABRIKAM.replace('username = "fabrikam-pbx"\n', 'password = "x"\n')
    assert problems(text) == [
        'orgs[0].sip: give "username" (digest authentication) or "trusted" (addresses), or both',
        'orgs[0].sip.password: only with "username"',
    ]


def test_realm_must_quote_safely() -> None:
    text = HEAD + FABRIKAM.replace('"fabrikam.example"', r'"a\"b"')
    assert problems(text) == [
        'orgs[0].sip.realm: expected a realm: 1 to 64 printable ASCII characters without quotes '
        'or backslashes, got "a\\"b"']


def test_a_later_orgs_toll_free_number_on_a_users_number_is_named_at_its_own_place() -> None:
    text = HEAD + CONTOSO + FABRIKAM.replace('id = "fabrikam"\n', 'id = "fabrikam"\n'
                                             'toll_free_numbers = ["+18005550199", "+14155550100"]\n')
    assert problems(text) == [
        "orgs[1].toll_free_numbers[1]: number +14155550100 is also given at "
        "orgs[0].users[0].number: every number names one user or org"]
