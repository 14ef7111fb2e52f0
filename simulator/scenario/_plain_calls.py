"""Explicit `[[calls]]` entries read without a pydantic model each, when they are plainly valid.

A file of 200,000 `[[calls]]` is normal (a replayed day of a busy tenant), and validating a
model per call costs ~15 us: three times the TOML parse of the same entry.  So `plain_call`
reads an entry's values directly when every one has the form people write (`at = "36ms"`,
`to = "+12125550100"`), and returns None for anything else.  Those go through
`_schema.CallModel` as before, so a mistake is reported by the same check, with the same
words, whether the file has one call or a million.

A value `plain_call` accepts is one `CallModel` accepts, parsed to the same result: each rule
below is the narrow, valid case of the field's validator, named beside it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..units import MAX_DURATION_MS, MS_PER_UNIT
from ._schema import CALL_TYPES

__all__ = ["PlainCall", "PlainCalls"]

_KEYS = frozenset({"at", "org", "user", "type", "to", "from", "duration"})
_REQUIRED = ("at", "org", "type", "to", "duration")
_TYPES = frozenset(CALL_TYPES)
# `units.parse_duration_ms` without a fraction: digits and a unit (12 digits keep it exact)
_WHOLE_DURATION = re.compile(r"([0-9]{1,12})(ms|s|m|h|d)", re.ASCII)
_E164 = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)  # `units.parse_e164`'s pattern
_MAX_SECONDS = MAX_DURATION_MS // 1_000


class PlainCall(NamedTuple):
    """A `[[calls]]` entry's values, parsed as `CallModel` would."""

    at_ms: int
    org: str
    user: str | None
    type: str
    to_number: int
    from_number: int | None
    duration_ms: int


class PlainCalls:
    """Reads entries one by one, remembering the values it has parsed (durations, ids and
    numbers repeat across a file's calls)."""

    def __init__(self) -> None:
        self._durations: dict[object, int] = {}
        self._texts: set[str] = set()
        self._numbers: dict[str, int] = {}

    def read(self, item: object) -> PlainCall | None:
        """The entry's values, or None when any of them is not of the plain form."""
        return self.read_all([item])[0]

    def read_all(self, items: list[object]) -> list[PlainCall | None]:
        """`read` of each entry, in one loop: a file of 200,000 calls is normal.  Each is a plain
        tuple of `PlainCall`'s fields in its order (equal to the `PlainCall`)."""
        durations, numbers, texts = self._durations, self._numbers, self._texts
        out: list[PlainCall | None] = []
        for item in items:
            if (type(item) is not dict or not _KEYS.issuperset(item)
                    or len(item) - ("user" in item) - ("from" in item) != len(_REQUIRED)):
                out.append(None)  # a key unknown or missing
                continue
            at, duration, to = item["at"], item["duration"], item["to"]
            org, user, kind, from_ = item["org"], item.get("user"), item["type"], item.get("from")
            # the values seen before first (a str key never equals an int one), then the rules
            at_ms = durations.get(at) if type(at) is str else None
            if at_ms is None:
                at_ms = self._duration(at)
            duration_ms = durations.get(duration) if type(duration) is str else None
            if duration_ms is None:
                duration_ms = self._duration(duration)
            to_number = numbers.get(to) if type(to) is str else None
            if to_number is None:
                to_number = self._number(to)
            from_number = None
            if from_ is not None:
                from_number = numbers.get(from_) if type(from_) is str else None
                if from_number is None:
                    from_number = self._number(from_)
            if (at_ms is None or duration_ms is None or to_number is None
                    or (from_ is not None and from_number is None)
                    or type(org) is not str or (org not in texts and not self._text(org))
                    or (user is not None and (type(user) is not str
                                              or (user not in texts and not self._text(user))))
                    or type(kind) is not str or kind not in _TYPES):
                out.append(None)
                continue
            # a plain tuple (a PlainCall's fields): a NamedTuple's __new__ costs ~0.5 us more
            out.append((at_ms, org, user, kind, to_number, from_number, duration_ms))  # type: ignore[arg-type]
        return out

    def _duration(self, value: object) -> int | None:
        """`NonNegativeDuration`: whole seconds, or digits and a unit, within 100 years."""
        kind = type(value)
        if kind is not int and kind is not str:  # bool is no int here: `true` is no duration
            return None
        ms = self._durations.get(value)  # an int key never equals a str one
        if ms is not None:
            return ms
        if kind is int:
            ms = value * 1_000 if 0 <= value <= _MAX_SECONDS else None
        else:
            m = _WHOLE_DURATION.fullmatch(value)
            if m is not None:
                ms = int(m[1]) * MS_PER_UNIT[m[2]]
                ms = ms if ms <= MAX_DURATION_MS else None
        if ms is not None:
            self._durations[value] = ms
        return ms

    def _text(self, value: object) -> bool:
        """`Text`: a non-empty string without control characters (printable is stricter)."""
        if type(value) is not str:
            return False
        if value in self._texts:
            return True
        if value and value.isprintable():
            self._texts.add(value)
            return True
        return False

    def _number(self, value: object) -> int | None:
        """`E164`, as digits (`rating_core.parse_number`)."""
        if type(value) is not str:
            return None
        digits = self._numbers.get(value)
        if digits is None and _E164.fullmatch(value):
            digits = self._numbers[value] = int(value[1:])
        return digits
