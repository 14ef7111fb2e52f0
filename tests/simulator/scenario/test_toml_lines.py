"""Finding the line a loader place was written on (simulator/scenario/_toml_lines.py)."""

from __future__ import annotations

from simulator.scenario._toml_lines import lines_of

TEXT = '''\
[simulation]
name = """a
[[orgs]]
"""
seed = 1

[[orgs]]
id = "a"

[[orgs]]
id = "b"
credits.initial = "1.00"

[[orgs.users]]
id = "x"

[[orgs.users]]
licenses = ["e5"]

[plans]
domestic_minutes = { default = 3000, US = 10 }
"quoted key" = 1
'''


def test_the_text_is_toml() -> None:
    import tomllib

    assert tomllib.loads(TEXT)["orgs"][1]["users"][1] == {"licenses": ["e5"]}


def test_places_map_to_the_line_of_their_key_or_nearest_table() -> None:
    places = [
        "simulation.seed",  # after a multi-line string that looks like a header
        "orgs[0].id",
        "orgs[1].id",
        "orgs[1].credits.initial",  # a dotted key
        "orgs[1].users[1].licenses",
        "orgs[1].users[1].licenses[0]",  # inside a value: the key's line
        "orgs[1].users[0].country",  # not written: its table's line
        "plans.domestic_minutes.US",  # inside an inline table
        "plans.quoted key",
        "orgs[5].id",
        "",
    ]
    assert lines_of(TEXT, places) == [5, 8, 11, 12, 18, 18, 14, 21, 22, None, None]
