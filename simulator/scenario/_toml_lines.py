"""Which line of a TOML file a loader place (`orgs[0].users[1].licenses`) was written on.

tomllib returns values without positions, and problems are found on those values; this
module reads the text a second time, only when there is something to report, and maps
each table header and each `key =` line to the place the loader would call it.  It reads
the common layout (headers, one key per line, inline tables on one line); a place it cannot
find has no line, and the problem is still reported with its file and place.
"""

from __future__ import annotations

import re

__all__ = ["lines_of"]

_BARE = r'[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\''
_DOTTED = rf"(?:{_BARE})(?:\s*\.\s*(?:{_BARE}))*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(_BARE)


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def _places(text: str) -> dict[str, int]:
    """Every place a header or key line defines -> its 1-based line number (first wins)."""
    places: dict[str, int] = {}
    arrays: dict[str, int] = {}  # array-of-tables place -> index of its current item
    table = ""
    in_multiline: str | None = None  # the quote that closes an open multi-line string
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2:
                in_multiline = None
            continue
        for quote in ('"""', "'''"):
            if line.count(quote) % 2:
                in_multiline = quote
        if m := _ARRAY_HEADER.match(line):
            *parents, last = _parts(m[1])
            array = _join(_resolve(parents, arrays), last)
            arrays[array] = arrays.get(array, -1) + 1
            table = f"{array}[{arrays[array]}]"
            places.setdefault(table, number)
        elif m := _TABLE_HEADER.match(line):
            table = _resolve(_parts(m[1]), arrays)
            places.setdefault(table, number)
        elif m := _KEY.match(line):
            place = table
            for part in _parts(m[1]):
                place = _join(place, part)
                places.setdefault(place, number)
    return places


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _resolve(parts: list[str], arrays: dict[str, int]) -> str:
    """A header's dotted name as a place: `orgs.credits` is `orgs[2].credits` in the 3rd org."""
    place = ""
    for part in parts:
        place = _join(place, part)
        if place in arrays:
            place = f"{place}[{arrays[place]}]"
    return place


_LAST_PART = re.compile(r"(?:\.[^.\[\]]+|\[\d+\])$")


def lines_of(text: str, places: list[str]) -> list[int | None]:
    """For each place, the line that defines it or its nearest enclosing table or key."""
    found = _places(text)
    return [_line(found, place) for place in places]


def _line(found: dict[str, int], place: str) -> int | None:
    while place:
        if place in found:
            return found[place]
        shorter = _LAST_PART.sub("", place)
        if shorter == place:
            return None
        place = shorter
    return None
