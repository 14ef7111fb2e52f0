"""`--set KEY=V1,V2,...`: scenario values replaced by dotted path, before the file is checked.

A path walks the parsed TOML document: table keys, `[i]` list indexes, and inside a list of
tables with ids (`orgs`, an org's `users`) the id itself, so `orgs.contoso.credits.initial`
and `orgs[0].credits.initial` name the same value.  The edit is made on the document before
validation (`scenario.parse_scenario(edit=...)`), so a bad value gets the loader's own error
and an edited scenario is exactly the file with that line changed.

Values are TOML scalars as typed (`100`, `0.5`, `true`, `"text"`); anything else is text.
Where the file holds a string (money is a decimal string: `initial = "100.00"`), the value is
put in as the text typed, so `--set ...initial=100.00` stays the exact decimal "100.00".

A problem the loader finds in an edited scenario is the setting's when it lies at or under a
setting's place, or when the file as written does not have it (`orgs.acme.id=x` leaves the
traffic of "acme" with an unknown org): `OverrideEdit.blame` names the `--set` it came from,
`--set orgs.acme.credits.initial=abc: orgs[0].credits.initial: expected a decimal string ...`,
instead of the file's line, which holds the value the setting replaced.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scenario import CREDITS_MONEY_KEYS, ORG_TABLE_KEYS, Problem, ScenarioError

Scalar = str | int | float | bool

_SEGMENT = re.compile(r"(?P<key>[A-Za-z0-9_-]+)?(?P<indexes>(?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Override:
    """One scenario value replaced: `path` (`orgs.contoso.credits.initial`) gets `value`.

    `text` is the value as typed on the command line (None when built in code); it is what a
    string-valued key receives, and what reports show.
    """

    path: str
    value: Scalar
    text: str | None = field(default=None, compare=False, repr=False)

    @property
    def shown(self) -> str:
        """The value as a person would type it after `=`."""
        if self.text is not None:
            return self.text
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)

    def __str__(self) -> str:
        return f"{self.path}={self.shown}"


def parse_set(argument: str) -> list[Override]:
    """`KEY=V1,V2,...` -> one Override per value, in the order given.

    Raises ValueError with a one-line message for a malformed argument (no `=`, an empty key
    or value, a malformed path); whether the path exists is checked against the scenario.
    """
    key, sep, values = argument.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f'--set {argument}: expected KEY=VALUE[,VALUE...], e.g. '
                         '"orgs.contoso.credits.initial=50.00,100.00"')
    _segments(key)  # a malformed path is refused before any run
    texts = _split_values(values)
    if not texts or any(not t for t in texts):
        raise ValueError(f"--set {argument}: empty value (values are separated by commas)")
    seen: set[Scalar] = set()
    overrides = []
    for text in texts:
        value = _scalar(text)
        if (type(value), value) in seen:
            raise ValueError(f"--set {argument}: value {text} given twice")
        seen.add((type(value), value))
        overrides.append(Override(key, value, text))
    return overrides


def apply_overrides(document: dict[str, Any], overrides: Iterable[Override]) -> list[str]:
    """Put each override's value into the parsed TOML `document`, in place; returns the place
    of each, as the loader names it (ids resolved: `orgs[0].credits.initial`).

    Raises ScenarioError naming the `--set` path and what exists where it stops (the keys of
    a table, the ids or the length of a list) when a path leads nowhere.
    """
    places = []
    for override in overrides:
        parent, last, place = _walk(document, override.path, create=True)
        places.append(place)
        current = parent[last] if _has(parent, last) else None
        if isinstance(current, (dict, list)):
            kind = "a table" if isinstance(current, dict) else "a list"
            _fail(override.path, f"is {kind}, not a value")
        if current is None and _is_credits_money(override.path):
            current = ""  # left out of the file: money all the same, so the text as typed
        parent[last] = _typed(override, current)
    return places


class OverrideEdit:
    """The edit some overrides make to a parsed scenario: `parse_scenario(edit=...)` calls it
    on the document; `blame` then names, in the loader's problems, the overrides they came from.
    """

    def __init__(self, overrides: Iterable[Override]) -> None:
        self.overrides = tuple(overrides)
        self.places: tuple[str, ...] | None = None  # once applied: each override's place

    def __call__(self, document: dict[str, Any]) -> None:
        self.places = tuple(apply_overrides(document, self.overrides))

    def blame(self, err: ScenarioError, unedited: Callable[[], object]) -> ScenarioError:
        """`err` (the loader's, for the edited scenario) with each problem the edit caused
        named by its `--set`: `--set PATH=VALUE: place: problem`, one line, no file.

        A problem at or under an override's place is that override's.  Any other is the
        file's own if loading it unedited (`unedited()`, called only then: it raises
        ScenarioError or returns) has it too, else the edit's as a whole.  An edit that was
        never applied (the file unreadable, a path leading nowhere) leaves `err` as it is.
        """
        if self.places is None:
            return err
        owners = [self._owner(problem) for problem in err.problems]
        if None in owners:
            try:
                unedited()
                written: set[tuple[str, str]] = set()
            except ScenarioError as as_written:
                written = {(p.place, p.problem) for p in as_written.problems}
            whole = " ".join(f"--set {o}" for o in self.overrides)
            owners = [owner or (None if (p.place, p.problem) in written else whole)
                      for p, owner in zip(err.problems, owners)]
        return ScenarioError([p if owner is None else Problem(owner, str(p))
                              for p, owner in zip(err.problems, owners)])

    def _owner(self, problem: Problem) -> str | None:
        """`--set PATH=VALUE` of the override whose place holds the problem's place, if any."""
        assert self.places is not None
        for override, place in zip(self.overrides, self.places):
            if problem.place == place or problem.place.startswith((place + ".", place + "[")):
                return f"--set {override}"
        return None


def check_paths(document: dict[str, Any], overrides: Iterable[Override]) -> None:
    """Raise ScenarioError if any override's path leads nowhere in `document` (nothing changes)."""
    for override in overrides:
        _walk(document, override.path)


def _typed(override: Override, current: object) -> Scalar:
    """The value to store: as typed into a string-valued key (money), else as parsed."""
    value = override.value
    if isinstance(current, str) and not isinstance(value, (str, bool)):
        return override.text if override.text is not None else str(value)
    return value


def _walk(document: dict[str, Any], path: str, create: bool = False) -> tuple[Any, Any, str]:
    """The container holding the last step of `path`, that step (a key or an index), and the
    place of `path` as the loader names it (`orgs[0].credits.initial` for `orgs.acme.credits.initial`).

    An org's optional table that the file leaves out (`orgs.acme.credits` of
    `orgs.acme.credits.initial`) is created empty when `create`, else walked as if it were.
    """
    steps = _steps(path)
    node: Any = document
    walked = ""
    place = ""  # `walked` with ids resolved to indexes
    trail: list[str | int] = []  # the steps walked, ids resolved to indexes
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(node, list):
                _fail(walked, f"is not a list, cannot take [{step}]")
            if step >= len(node):
                _fail(f"{walked}[{step}]", f"no such item ({walked} has {len(node)})")
            place = f"{place}[{step}]"
            if last:
                return node, step, place
            node, walked = node[step], f"{walked}[{step}]"
            trail.append(step)
            continue
        here = f"{walked}.{step}" if walked else step
        if isinstance(node, list):
            index = _by_id(node, step)
            if index is None:
                ids = [item["id"] for item in node if isinstance(item, dict) and "id" in item]
                _fail(here, f'no item with id "{step}" in {walked} '
                            f"({'ids: ' + ', '.join(map(str, ids)) if ids else 'its items have no ids'})")
            place = f"{place}[{index}]"
            if last:
                return node, index, place
            node, walked = node[index], here
            trail.append(index)
            continue
        if not isinstance(node, dict):
            _fail(walked, f"is a value, not a table (cannot take .{step})")
        place = f"{place}.{step}" if place else step
        if step not in node:
            if last:  # a key the file leaves out (a default) may be set; the loader checks the name
                return node, step, place
            if _optional_org_table(trail, step, steps[i + 1:]):
                return (node.setdefault(step, {}) if create else {}), steps[-1], f"{place}.{steps[-1]}"
            keys = ", ".join(node) or "none"
            _fail(here, f'no table "{step}" in {walked or "the scenario"} (keys there: {keys})')
        if last:
            return node, step, place
        node, walked = node[step], here
        trail.append(step)
    raise AssertionError("unreachable: a path has at least one step")


def _is_credits_money(path: str) -> bool:
    """Whether `path` names a money key of an org's credits (`orgs.acme.credits.initial`)."""
    steps = _steps(path)
    return len(steps) == 4 and steps[0] == "orgs" and steps[2] == "credits" and steps[3] in CREDITS_MONEY_KEYS


def _optional_org_table(trail: list[str | int], table: str | int, rest: list[str | int]) -> bool:
    """Whether `table` is an org's optional table (trail: `orgs`, an index) and `rest` one of its keys."""
    keys = ORG_TABLE_KEYS.get(table) if isinstance(table, str) else None
    return (keys is not None and len(trail) == 2 and trail[0] == "orgs" and isinstance(trail[1], int)
            and len(rest) == 1 and rest[0] in keys)


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for key, indexes in _segments(path):
        if key:
            steps.append(key)
        steps.extend(int(i) for i in _INDEX.findall(indexes))
    return steps


def _segments(path: str) -> list[tuple[str | None, str]]:
    """`traffic[2].calls_per_hour` -> [("traffic", "[2]"), ("calls_per_hour", "")]."""
    found = []
    for segment in path.split("."):
        m = _SEGMENT.fullmatch(segment)
        if not segment or m is None or not (m["key"] or m["indexes"]):
            raise ValueError(f'--set {path}: not a path like "orgs.contoso.credits.initial" or '
                             '"traffic[2].calls_per_hour"')
        found.append((m["key"], m["indexes"]))
    if found[0][0] is None:
        raise ValueError(f"--set {path}: a path starts with a key of the scenario, not an index")
    return found


def _by_id(items: Sequence[Any], wanted: str) -> int | None:
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("id") == wanted:
            return index
    return None


def _has(container: Any, step: str | int) -> bool:
    return step in container if isinstance(container, dict) else True


def _fail(place: str, problem: str) -> None:
    raise ScenarioError([Problem(f"--set {place}", problem)])


def _scalar(text: str) -> Scalar:
    """A TOML scalar (integer, float, boolean, quoted string), else the text itself."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, ValueError):
        return text
    return value if isinstance(value, (str, int, float, bool)) else text


def _split_values(values: str) -> list[str]:
    """Split at commas outside double quotes; each value stripped of surrounding spaces."""
    parts, current, quoted = [], [], False
    for char in values:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts
