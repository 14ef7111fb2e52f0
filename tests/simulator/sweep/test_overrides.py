"""`--set`: values replaced by dotted path before the loader checks the file; the grid; seeds."""

from __future__ import annotations

import tomllib

import pytest

from simulator.scenario import ScenarioError, parse_scenario
from simulator.sweep import Override, apply_overrides, check_paths, derive_seeds, grid, load_point, parse_set

from .files import TEXT


def _load(*sets: str):
    point = tuple(o for s in sets for o in parse_set(s))
    return parse_scenario(TEXT, "s.toml", edit=lambda doc: apply_overrides(doc, point))


def _problem(*sets: str) -> str:
    with pytest.raises(ScenarioError) as err:
        _load(*sets)
    [problem] = err.value.problems
    return problem.located()


def test_org_ids_and_list_indexes_address_the_same_value() -> None:
    by_id = _load("orgs.acme.credits.initial=7.25").setup.orgs[0].credits
    by_index = _load("orgs[0].credits.initial=7.25").setup.orgs[0].credits
    assert by_id == by_index and by_id.initial_micro == 7_250_000


def test_money_stays_the_decimal_typed_and_numbers_stay_numbers() -> None:
    scenario = _load("orgs.acme.credits.recharge_amount=10", "traffic[1].calls_per_hour=2.5",
                     "orgs.acme.credits.auto_recharge=false")
    assert scenario.setup.orgs[0].credits.recharge_amount_micro == 10_000_000
    assert scenario.setup.orgs[0].credits.auto_recharge is False
    assert scenario.traffic[1].calls_per_hour == 2.5


def test_a_key_the_file_leaves_out_may_be_set() -> None:
    scenario = _load('simulation.currency="EUR"')
    assert scenario.setup.currency == "EUR"


def test_an_orgs_credits_table_the_file_leaves_out_is_created_by_setting_one_of_its_keys() -> None:
    """As `callsim import` writes a scenario: `[orgs.credits]` commented out."""
    credits = _load("orgs.globex.credits.initial=3.00").setup.orgs[1].credits
    assert credits.initial_micro == 3_000_000 and credits.auto_recharge is False
    document = tomllib.loads(TEXT)
    check_paths(document, parse_set("orgs.globex.credits.initial=3.00"))
    assert document == tomllib.loads(TEXT)  # checked, not changed


@pytest.mark.parametrize("path, message", [
    ("orgs.acmee.credits.initial", '--set orgs.acmee: no item with id "acmee" in orgs (ids: acme, globex)'),
    ("traffic[5].calls_per_hour", "--set traffic[5]: no such item (traffic has 2)"),
    ("orgs.globex.credit.initial", '--set orgs.globex.credit: no table "credit" in orgs.globex '
                                   "(keys there: id, users)"),
    ("orgs.globex.credits.initail", '--set orgs.globex.credits: no table "credits" in orgs.globex '
                                    "(keys there: id, users)"),
    ("traffic[0].credits.initial", '--set traffic[0].credits: no table "credits" in traffic[0] '
                                   "(keys there: org, type, calls_per_hour, holding_mean)"),
    ("orgs.acme.credits", "--set orgs.acme.credits: is a table, not a value"),
])
def test_a_bad_path_names_itself_and_what_exists_there(path: str, message: str) -> None:
    assert _problem(f"{path}=1") == message


def _blamed(*sets: str, text: str = TEXT) -> list[str]:
    """The lines `callsim` prints for a point the scenario cannot take (sweep, plan: load_point)."""
    with pytest.raises(ScenarioError) as err:
        load_point(text, "s.toml", tuple(o for s in sets for o in parse_set(s)))
    return [p.located() for p in err.value.problems]


def test_a_bad_value_names_its_set_as_typed_then_the_loaders_place_and_problem() -> None:
    """Not the file's line: it holds the value the setting replaced."""
    assert _blamed("orgs.acme.credits.recharge_amount=abc") == [
        '--set orgs.acme.credits.recharge_amount=abc: orgs[0].credits.recharge_amount: '
        'expected a decimal string like "0.02", got "abc"']
    assert _blamed("orgs[0].credits.initial=-5") == [
        '--set orgs[0].credits.initial=-5: orgs[0].credits.initial: must not be negative, got "-5"']
    assert _blamed("traffic[0].calls_per_hour=0")[0].startswith(
        "--set traffic[0].calls_per_hour=0: traffic[0].calls_per_hour: ")
    assert _blamed("orgs.acme.credits.recharge_amout=5") == [
        "--set orgs.acme.credits.recharge_amout=5: orgs[0].credits.recharge_amout: unknown key"]


def test_each_problem_names_the_set_at_its_place() -> None:
    assert _blamed("orgs.acme.credits.initial=-1", "orgs.globex.credits.recharge_amount=0") == [
        '--set orgs.acme.credits.initial=-1: orgs[0].credits.initial: must not be negative, got "-1"',
        "--set orgs.globex.credits.recharge_amount=0: orgs[1].credits.recharge_amount: "
        'must be greater than 0, got "0"']


def test_a_problem_elsewhere_that_the_point_causes_names_its_sets() -> None:
    """Renaming an org leaves its traffic with an unknown org: not the traffic's line's fault."""
    assert _blamed("orgs.acme.id=initech") == [
        '--set orgs.acme.id=initech: traffic[0].org: unknown org "acme"']
    assert _blamed("orgs.acme.id=initech", "orgs.globex.credits.initial=1.00") == [
        '--set orgs.acme.id=initech --set orgs.globex.credits.initial=1.00: traffic[0].org: '
        'unknown org "acme"']


def test_a_problem_the_file_has_as_written_keeps_its_line() -> None:
    broken = TEXT.replace('holding_mean = "3m"', 'holding_mean = "3 minutes"', 1)
    lines = _blamed("orgs.acme.credits.initial=-1", text=broken)
    assert lines[0].startswith("--set orgs.acme.credits.initial=-1: orgs[0].credits.initial: ")
    assert len(lines) == 2 and lines[1].startswith("s.toml:") and "traffic[0].holding_mean" in lines[1]


@pytest.mark.parametrize("argument", ["novalue", "=5", "a.b=", "a..b=1", "[0].x=1", "a.b=1,,2", "a=1,1"])
def test_a_malformed_set_is_one_line(argument: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_set(argument)
    assert str(err.value).startswith(f"--set {argument.split('=')[0]}") and "\n" not in str(err.value)


def test_values_are_toml_scalars_else_text() -> None:
    values = [o.value for o in parse_set('k=1,2.5,true,"a,b",2027-06-30,50.00')]
    assert values == [1, 2.5, True, "a,b", "2027-06-30", 50.0]
    assert [o.shown for o in parse_set("k=50.00,7")] == ["50.00", "7"]


def test_the_grid_is_the_product_of_every_set_first_varying_slowest() -> None:
    a, b = parse_set("a=1,2"), parse_set("b=x,y,z")
    points = grid([a, b])
    assert len(points) == 6 and points[0] == (a[0], b[0]) and points[1] == (a[0], b[1])
    assert grid([]) == [()]
    with pytest.raises(ValueError, match="given twice"):
        grid([a, parse_set("a=3")])


def test_seeds_are_deterministic_a_prefix_of_more_and_valid_scenario_seeds() -> None:
    seeds = derive_seeds(11, 50)
    assert seeds == derive_seeds(11, 50) and seeds[:10] == derive_seeds(11, 10)
    assert len(set(seeds)) == 50 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seeds(12, 3) != seeds[:3]


def test_a_point_is_loaded_once_per_worker() -> None:
    point = (Override("orgs.acme.credits.initial", "9.00"),)
    assert load_point(TEXT, "s.toml", point) is load_point(TEXT, "s.toml", point)
