"""Scenario loading: a TOML file (SPEC §2) in, a checked, frozen `Scenario` out.

Invalid input must be rejected before anything runs, with one line per problem naming its
place and never a traceback (SPEC §2).  So loading never stops at the first mistake: each
table is validated on its own (`_schema`), then the rules that relate tables are
checked here, and every problem found is raised together in one `ScenarioError`.

Before any group is expanded into users, the file's work is weighed (`estimate`): a file of a
few lines can ask for ten million users or 10^13 calls, and that must be refused in a second,
not found out by an out-of-memory kill.  Parts of a valid file that can do nothing are
returned as `Scenario.warnings`.

The result speaks the rating core's language (`rating_core._model`): money in micro-units,
time in ms since start, users expanded from groups and numbered globally in file order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import tomli

from rating_core import (
    CallKind,
    Credits,
    Org,
    Plans,
    RatingSetup,
    Tariff,
    User,
    UserGroup,
    Users,
    parse_number,
)
from . import estimate
from . import _schema as schema
from . import _traffic_schema as traffic_schema
from .. import units
from ._plain_calls import PlainCall, PlainCalls
from ._sip import SipCollector, SipConfig
from ._toml_lines import lines_of
from ._user_names import Claims, OrgNames
from ._traffic_shapes import Destination, Holding, RateProfile

if TYPE_CHECKING:  # pydantic's expectation models are built only for a scenario with checks
    from ._expect_schema import Expectation
from ..units import format_duration, show

__all__ = [
    "CallSpec",
    "Problem",
    "Scenario",
    "ScenarioError",
    "TrafficSpec",
    "load_scenario",
    "parse_scenario",
]

MS_PER_HOUR = 3_600_000
GROUP_ID_DIGITS = 4  # sales-0001: at least this many digits, more when count needs them
_DEFAULT_DOMESTIC_MINUTES = 3000
LATEST_END = datetime(9998, 12, 1, tzinfo=timezone.utc)  # see _Loader._simulation
_CALL_KINDS = {name: CallKind[name.upper()] for name in schema.CALL_TYPES}


@dataclass(frozen=True)
class Problem:
    """One user mistake: where it is (`orgs[0].users[1].licenses`) and what is wrong.

    `file` and `line` say where the place was written, when known: `located()` is the line
    printed for people, `str()` the place and problem alone.
    """

    place: str
    problem: str
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:  # no place: a problem of the file's text, located by its line
        return f"{self.place}: {self.problem}" if self.place else self.problem

    def located(self) -> str:
        """`scenario.toml:12: orgs[0].users[1].licenses: unknown license "foo"`."""
        if not self.file:
            return str(self)
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self}"


class ScenarioError(Exception):
    """The scenario cannot run; `problems` lists every mistake found, section by section."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@dataclass(frozen=True)
class TrafficSpec:
    """One `[[traffic]]` source: Poisson arrivals, at a flat rate or by the hour of the week.

    Without the shape fields (all None) it is a flat `calls_per_hour` with exponential holding
    times of mean `holding_mean_ms` to uniform `destinations`.  With a `rate_profile`,
    `calls_per_hour` is its busiest hour's rate; with a `holding` distribution,
    `holding_mean_ms` is its mean (rounded); with `weighted` destinations, `destinations`
    holds the digits of each entry, in the same order.
    """

    org: int  # org index
    type: str  # domestic | international | conference_dial_out | toll_free
    calls_per_hour: float
    holding_mean_ms: int
    users: tuple[int, ...]  # global user indices; all of the org's when omitted; () for toll_free
    destinations: tuple[str, ...] | None  # digit prefixes; None: the generator's default
    rate_profile: RateProfile | None = None  # None: flat calls_per_hour
    holding: Holding | None = None  # None: exponential, mean holding_mean_ms
    weighted: tuple[Destination, ...] | None = None  # None: destinations drawn uniformly


class _TrafficShape(NamedTuple):  # a tuple: files with 10,000 sources make 10,000 of them
    """A source's keys that need no other table: checked before anything is expanded, so that
    the work estimate sees the rate profile and the holding times."""

    model: schema.TrafficModel
    profile: RateProfile | None
    peak_per_hour: float
    holding: Holding
    destinations: tuple[str, ...] | None
    weighted: tuple[Destination, ...] | None


class CallSpec(NamedTuple):  # a tuple: files with 200,000 calls are normal
    """One explicit `[[calls]]` entry."""

    at_ms: int
    org: int
    user: int  # global user index, -1 for toll_free
    kind: CallKind
    to_number: int
    from_number: int  # 0 when absent
    duration_ms: int


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario.  Mappings are plain dicts (picklable); treat them as read-only."""

    name: str
    seed: int
    setup: RatingSetup
    traffic: tuple[TrafficSpec, ...]
    calls: tuple[CallSpec, ...]
    groups: Mapping[tuple[int, str], tuple[int, ...]]  # (org index, group) -> global user indices
    expectations: tuple[Expectation, ...]  # the `[[expect]]` tables, checked and parsed
    source: str  # the path, or "<string>"
    workload: estimate.Workload | None = None  # what it asks of the machine (`estimate`)
    warnings: tuple[Problem, ...] = ()  # valid, but something in it does nothing or is slow
    sip: SipConfig = SipConfig()  # users' numbers and SIP names, orgs' SIP credentials (`_sip`)


def load_scenario(
    path: str | os.PathLike[str], machine: estimate.Machine | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Scenario:
    """Read and check a scenario file; every user mistake raises `ScenarioError`.

    With a `machine`, a scenario whose estimated work exceeds it is refused too, before its
    groups are expanded (`estimate.refusals`); without one only the fixed limits apply.
    `edit`: as for `parse_scenario`.
    """
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except FileNotFoundError:
        raise ScenarioError([Problem(source, "no such file")]) from None
    except IsADirectoryError:
        raise ScenarioError([Problem(source, "is a directory, not a scenario file")]) from None
    except OSError as exc:
        raise ScenarioError([Problem(source, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8-sig")  # TOML is UTF-8; tolerate an editor's BOM
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError([Problem(source, f"not UTF-8 text (line {line})")]) from None
    return parse_scenario(text, source, machine, edit)


def parse_scenario(
    text: str, source: str = "<string>", machine: estimate.Machine | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Scenario:
    """Check scenario TOML text; `source` names it in problems and in `Scenario.source`.

    Raises `ScenarioError` with every problem found, each with its file and, when it can be
    found, its line; `machine` as for `load_scenario`.  `edit` changes the parsed document in
    place before it is checked (`callsim sweep --set`), so an edited value meets the same
    checks as a written one; it raises `ScenarioError` itself for an edit it cannot make.
    """
    try:
        # tomli is tomllib compiled (mypyc): the same parser, 3x faster on a file of 200,000
        # `[[calls]]`; its 2.4+ reads TOML 1.1, as tomllib does from Python 3.15.
        raw = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise ScenarioError([Problem(source, _syntax_problem(exc))]) from None
    except RecursionError:  # past 400 nested arrays and inline tables
        raise ScenarioError([Problem(source, "TOML nested too deeply")]) from None
    except ValueError as exc:  # int() of a number longer than Python converts (4300 digits)
        raise ScenarioError([_value_problem(text, exc, source)]) from None
    if edit is not None:
        edit(raw)
    try:
        scenario = _Loader(source, machine).load(raw)
    except ScenarioError as err:
        raise ScenarioError(_located(err.problems, text, source)) from None
    return replace(scenario, warnings=tuple(_located(list(scenario.warnings), text, source)))


def _located(problems: list[Problem], text: str, source: str) -> list[Problem]:
    """The problems with the file and, when it can be found, the line of each place."""
    if not problems:  # finding lines reads the whole file: a 10,000-org file has nothing to find
        return []
    lines = lines_of(text, [p.place for p in problems])
    return [replace(p, file=source, line=line) for p, line in zip(problems, lines)]


# A value, not digits inside a string: it follows "=", "[", "," or "{" (and spaces).
_LONG_NUMBER = re.compile(r"(?:^|[=\[,{])\s*[+-]?(?:0[xob])?([0-9A-Fa-f_]{4000,})", re.MULTILINE)


def _value_problem(text: str, exc: ValueError, source: str) -> Problem:
    """`big.toml:3: calls_per_hour: number too large: 5000 digits` (the key when the number
    is its value on the same line, else no place but the line)."""
    m = _LONG_NUMBER.search(text)
    if m is None:
        return Problem(source, f"TOML value cannot be read: {exc}")
    line = text.count("\n", 0, m.start(1)) + 1
    line_start = text.rfind("\n", 0, m.start(1)) + 1
    key = _KEY_BEFORE.match(text, line_start, m.start(1))
    return Problem(key[1] if key else "", f"number too large: {len(m[1])} digits", source, line)


# `key =` (bare, dotted or quoted) at the start of the line that holds the long number.
_KEY_BEFORE = re.compile(r"\s*((?:[A-Za-z0-9_-]+|\"[^\"\n]*\"|'[^'\n]*')"
                         r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"\n]*\"|'[^'\n]*'))*)\s*=")


_TOML_WHERE = re.compile(r"(?P<what>.*) \((?P<where>at line \d+, column \d+|at end of document)\)")


def _syntax_problem(exc: tomli.TOMLDecodeError) -> str:
    """tomli says "Invalid value (at line 12, column 5)"; put the place first."""
    m = _TOML_WHERE.fullmatch(str(exc))
    if m:
        return f"TOML syntax error {m['where']}: {m['what']}"
    return f"TOML syntax error: {exc}"


class _Loader:
    """One pass over a parsed TOML document, collecting problems as it goes."""

    def __init__(self, source: str, machine: estimate.Machine | None = None) -> None:
        self.source = source
        self.machine = machine
        self.expand = True  # False: too big to run, so groups are not expanded into users
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.orgs: list[OrgNames] = []
        self.org_index: dict[str, int] = {}  # org id -> index of the first org with it
        self.tokens: dict[str, str] = {}  # token -> place of the org that has it
        self.sip = SipCollector()
        # traffic problems found before the orgs are read, reported in file order after them
        self.traffic_problems: list[list[Problem]] = []

    def report(self, place: str, problem: str) -> None:
        self.problems.append(Problem(place, problem))

    def check(self, model: type[schema.M], raw: object, place: str) -> schema.M | None:
        value, problems = schema.validate(model, raw, place)
        self.problems.extend(Problem(p, m) for p, m in problems)
        return value

    def load(self, raw: dict[str, Any]) -> Scenario:
        self.check(schema.DocumentModel, raw, "")
        sim = self._simulation(raw)
        shapes = [self._traffic_shape(i, item) for i, item in enumerate(_items(raw, "traffic"))]
        workload = _workload(raw, sim, shapes)
        self._check_size(workload)
        plans = self._plans(raw.get("plans"))
        tariffs = self._tariffs(_items(raw, "tariff"), "tariff", schema.TariffModel)
        toll_free = self._tariffs(
            _items(raw, "toll_free_tariff"), "toll_free_tariff", schema.TollFreeTariffModel
        )
        orgs = tuple(self._org(i, item) for i, item in enumerate(_items(raw, "orgs")))
        offset = 0
        for names, org in zip(self.orgs, orgs):
            names.offset = offset
            offset += len(org.users) if org else 0
        sip = self.sip.finish(len(self.orgs), [names.offset for names in self.orgs],
                              [names.ids for names in self.orgs], self.orgs)
        self.problems.extend(Problem(p, m) for p, m in self.sip.problems)
        traffic = tuple(self._traffic(i, shape) for i, shape in enumerate(shapes))
        end_ms = sim.duration if sim else None
        calls = self._calls(_items(raw, "calls"), end_ms)
        org_ids = [names.id for names in self.orgs]
        expect_items = _items(raw, "expect")
        expectations: list = []
        if expect_items:  # its pydantic models cost ~45 ms to build: only for scenarios with checks
            from . import _expect_schema as expect_schema

            context = expect_schema.Context(org_ids, len(_items(raw, "calls")), end_ms)
            expectations, found = expect_schema.parse_expectations(expect_items, context)
            self.problems.extend(Problem(p, m) for p, m in found)
        if self.problems or sim is None:
            raise ScenarioError(self.problems)
        setup = RatingSetup(
            start=sim.start,
            end_ms=sim.duration,
            currency=sim.currency,
            plans=plans,
            tariffs=tariffs,
            toll_free_tariffs=toll_free,
            orgs=tuple(o for o in orgs if o is not None),
        )
        self._warn_idle(raw, setup, traffic, calls)
        groups = {
            (o, name): tuple(range(names.offset + local.start, names.offset + local.stop))
            for o, names in enumerate(self.orgs)
            for name, local in names.groups.items()
        }
        if expectations:
            found = expect_schema.pool_problems(expectations, setup)
            if found:  # an org's pools follow from the whole, valid setup: checked only now
                raise ScenarioError([Problem(p, m) for p, m in found])
        return Scenario(
            name=sim.name,
            seed=sim.seed,
            setup=setup,
            traffic=tuple(t for t in traffic if t is not None),
            calls=tuple(c for c in calls if c is not None),
            groups=groups,
            expectations=tuple(expectations),
            source=self.source,
            workload=workload,
            warnings=tuple(self.warnings),
            sip=sip,
        )

    def _check_size(self, workload: estimate.Workload) -> None:
        """Refuse, before expanding anything, what no run could hold or this machine cannot."""
        found: list[tuple[str, str]] = []
        if workload.users > schema.MAX_USERS:
            found.append((workload.users_past_limit, f"takes the users past the limit of "
                          f"{schema.MAX_USERS:,} users in all (the file has {workload.users:,})"))
        elif self.machine is not None:
            found.extend(estimate.refusals(workload, self.machine))
        self.problems.extend(Problem(p, m) for p, m in found)
        self.expand = not found
        self.warnings.extend(Problem(p, m) for p, m in estimate.warnings(workload))

    def _warn_idle(
        self,
        raw: dict[str, Any],
        setup: RatingSetup,
        traffic: tuple[TrafficSpec | None, ...],
        calls: tuple[CallSpec | None, ...],
    ) -> None:
        """Warn about parts of a valid file that can do nothing, most likely by mistake."""
        warn = self.warnings.append
        if not traffic and not calls:
            warn(Problem("traffic", "no [[traffic]] and no [[calls]]: `callsim run` makes no "
                                        "calls (`callsim serve` ignores both)"))
        zones = {t.zone for t in setup.tariffs}
        written = raw.get("plans", {}).get("dial_out_zones", [])
        for k, zone in enumerate(written):
            if zone not in zones:
                warn(Problem(f"plans.dial_out_zones[{k}]",
                             f"no [[tariff]] has zone {show(zone)}: the dial-out pool never pays "
                             "for it"))
        routed = _Routes([t.prefix for t in setup.tariffs])
        routed_toll_free = _Routes([t.prefix for t in setup.toll_free_tariffs])
        for i, spec in enumerate(traffic):
            if spec is None:
                continue
            place, org = f"traffic[{i}]", setup.orgs[spec.org]
            toll_free = spec.type == "toll_free"
            if toll_free and not org.toll_free_numbers:
                warn(Problem(f"{place}.type", f"org {show(org.id)} has no toll_free_numbers: "
                                              "this traffic makes no calls"))
            routes = routed_toll_free if toll_free else routed
            table = "[[toll_free_tariff]]" if toll_free else "[[tariff]]"
            for k, prefix in enumerate(spec.destinations or ()):
                if not routes(prefix):
                    warn(Problem(f"{place}.destinations[{k}]",
                                 f"no {table} prefix routes {show(prefix)}: its calls are all "
                                 "unroutable"))

    # -- [simulation], [plans], [[tariff]], [[toll_free_tariff]] ----------------------------

    def _simulation(self, raw: dict[str, Any]) -> schema.SimulationModel | None:
        if "simulation" not in raw:
            return None  # DocumentModel said it is required
        sim = self.check(schema.SimulationModel, raw["simulation"], "simulation")
        if sim is None:
            return None
        try:
            end = sim.start + timedelta(milliseconds=sim.duration)
        except OverflowError:
            end = datetime.max.replace(tzinfo=timezone.utc)
        if end > LATEST_END:
            # Calendar rules need every instant they touch to be a real date: a lot bought just
            # before the end expires 12 months later, and the refill after it is a month on.
            place = "simulation.start" if sim.start >= LATEST_END else "simulation.duration"
            self.report(
                place,
                f"the simulation must end by {LATEST_END:%Y-%m-%d} (lots bought during it expire "
                "12 months later, and the calendar ends with the year 9999)",
            )
            return None
        return sim

    def _plans(self, raw: object) -> Plans:
        if raw is None:
            return Plans()
        model = self.check(schema.PlansModel, raw, "plans")
        if model is None:
            return Plans()
        return Plans(
            # A table without "default" keeps SPEC's default for every other country.
            domestic_minutes={"default": _DEFAULT_DOMESTIC_MINUTES, **model.domestic_minutes},
            international_minutes=model.international_minutes,
            dial_out_minutes=model.dial_out_minutes,
            dial_out_zones=tuple(model.dial_out_zones),
        )

    def _tariffs(
        self, items: list[Any], key: str, model: type[schema.TollFreeTariffModel]
    ) -> tuple[Tariff, ...]:
        tariffs: list[Tariff] = []
        first_at: dict[str, str] = {}
        for i, item in enumerate(items):
            place = f"{key}[{i}]"
            row = self.check(model, item, place)
            if row is None:
                continue
            prefix = row.prefix
            if prefix in first_at:
                problem = f"duplicate prefix {show(prefix)} (first at {first_at[prefix]})"
                self.report(f"{place}.prefix", problem)
                continue
            first_at[prefix] = place
            first_s, next_s = row.increment
            tariffs.append(
                Tariff(
                    prefix=prefix,
                    per_minute_micro=row.per_minute,
                    first_s=first_s,
                    next_s=next_s,
                    # Toll-free rows have none of these: the caller's prefix is all that counts.
                    country=getattr(row, "country", ""),
                    zone=getattr(row, "zone", ""),
                    plan_excluded=getattr(row, "plan_excluded", False),
                )
            )
        return tuple(tariffs)

    # -- [[orgs]] -----------------------------------------------------------------------------

    def _org(self, i: int, raw: object) -> Org | None:
        place = f"orgs[{i}]"
        model = self.check(schema.OrgModel, raw, place)
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        names = OrgNames(
            id=raw_id if isinstance(raw_id, str) else None, complete=model is not None
        )
        if model is not None:
            self._check_org_identity(place, model)
            self.sip.org(place, i, model)
        if names.id is not None:
            self.org_index.setdefault(names.id, len(self.orgs))
        self.orgs.append(names)
        # Users are checked even when the org table is not, so that all problems show at once.
        raw_users = raw.get("users") if isinstance(raw, dict) else None
        users = self._users(place, raw_users if isinstance(raw_users, list) else [], names)
        if model is None:
            return None
        return Org(
            id=model.id,
            users=users,
            toll_free_numbers=tuple(model.toll_free_numbers),
            credits=self._credits(f"{place}.credits", model.credits) if model.credits else None,
            token=model.token,
        )

    def _check_org_identity(self, place: str, model: schema.OrgModel) -> None:
        """Org ids and server-mode tokens must each name one org."""
        o = self.org_index.get(model.id)  # a dict: files with 10,000 orgs are normal
        if o is not None:
            self.report(f"{place}.id", f"duplicate org id {show(model.id)} (first at orgs[{o}].id)")
        if model.token is None:
            return
        if model.token in self.tokens:
            # The token itself stays out of the message: it is a credential.
            self.report(
                f"{place}.token",
                f"same token as {self.tokens[model.token]}; server mode tells orgs apart by token",
            )
        else:
            self.tokens[model.token] = f"{place}.token"

    def _credits(self, place: str, model: schema.CreditsModel) -> Credits:
        if model.auto_recharge:
            for key in ("recharge_below", "recharge_amount"):
                if getattr(model, key) is None:
                    self.report(f"{place}.{key}", "required when auto_recharge = true")
        return Credits(
            initial_micro=model.initial,
            auto_recharge=model.auto_recharge,
            recharge_below_micro=model.recharge_below or 0,
            recharge_amount_micro=model.recharge_amount or 0,
            card_expires=model.card_expires,
            retry_after_ms=model.retry_after,
        )

    def _users(self, org_place: str, items: list[Any], names: OrgNames) -> Users:
        """Read `[[orgs.users]]` (a group kept whole, its members numbered) and record their names."""
        parts: list[User | UserGroup] = []
        claims = Claims()
        for j, item in enumerate(items):
            place = f"{org_place}.users[{j}]"
            model = self.check(schema.UserModel, item, place)
            if model is None or not self._user_keys_ok(place, model):
                names.complete = False
                continue
            if not self.expand:  # refused for its size: the problem is reported already
                names.complete = False
                continue
            first = len(names)
            licenses = frozenset(model.licenses)
            if model.group is None:
                assert model.id is not None  # _user_keys_ok
                problem = claims.claim(f"{place}.id", "user id", model.id)
                if problem is not None:
                    self.report(f"{place}.id", problem)
                names.add_user(model.id)
                parts.append(User(model.id, model.country, licenses))
            else:
                assert model.count is not None  # _user_keys_ok
                width = max(GROUP_ID_DIGITS, len(str(model.count)))
                problem = claims.claim(f"{place}.group", "group", model.group, (model.count, width))
                if problem is not None:
                    self.report(f"{place}.group", problem)
                names.add_group(model.group, model.count, width)
                parts.append(UserGroup(model.group, model.count, width, model.country, licenses))
            self.sip.user(place, len(self.orgs) - 1, first, model, model.group is not None)
        return Users(parts)

    def _user_keys_ok(self, place: str, model: schema.UserModel) -> bool:
        if model.id is not None and model.group is not None:
            self.report(place, 'give either "id" (one user) or "group" with "count", not both')
            return False
        if model.id is None and model.group is None:
            self.report(place, 'needs "id" (one user) or "group" with "count"')
            return False
        if model.id is not None and model.count is not None:
            self.report(f"{place}.count", 'only allowed with "group"')
            return False
        if model.group is not None and model.count is None:
            self.report(f"{place}.count", 'required with "group"')
            return False
        return True

    # -- [[traffic]] and [[calls]] ----------------------------------------------------------

    def _find_org(self, place: str, org_id: str) -> tuple[int, OrgNames] | None:
        o = self.org_index.get(org_id)
        if o is not None:
            return o, self.orgs[o]
        self.report(place, f"unknown org {show(org_id)}")
        return None

    def _traffic_shape(self, i: int, raw: object) -> tuple[schema.TrafficModel | None,
                                                           _TrafficShape | None]:
        """Check a source's own keys; the problems wait in `traffic_problems` for `_traffic`."""
        place = f"traffic[{i}]"
        model, found = schema.validate(schema.TrafficModel, raw, place)
        problems = [Problem(p, m) for p, m in found]
        self.traffic_problems.append(problems)
        if model is None:
            return None, None
        shape_problems: list[tuple[str, str]] = []
        profile, peak, found = traffic_schema.rate_profile(
            model.rate_profile, f"{place}.rate_profile", model.calls_per_hour, f"{place}.calls_per_hour")
        shape_problems += found
        holding, found = traffic_schema.holding(
            model.holding, f"{place}.holding", model.holding_mean, f"{place}.holding_mean")
        shape_problems += found
        destinations, weighted = None, None
        if model.destinations is not None:
            destinations, weighted, found = traffic_schema.destinations(
                model.destinations, f"{place}.destinations")
            shape_problems += found
        problems += [Problem(p, m) for p, m in shape_problems]
        if shape_problems:
            return model, None
        assert holding is not None
        return model, _TrafficShape(model, profile, peak, holding, destinations, weighted)

    def _traffic(
        self, i: int, checked: tuple[schema.TrafficModel | None, _TrafficShape | None]
    ) -> TrafficSpec | None:
        place = f"traffic[{i}]"
        self.problems.extend(self.traffic_problems[i])
        model, shape = checked
        if model is None:
            return None
        found = self._find_org(f"{place}.org", model.org)
        if found is None:
            return None
        o, names = found
        users = range(0)
        if model.type == "toll_free":
            if model.users is not None:
                self.report(
                    f"{place}.users",
                    "not allowed for toll_free traffic (callers are outside the org)",
                )
        elif names.complete:
            local = names.get(model.users) if model.users is not None else None
            if model.users is None:
                users = range(len(names))
            elif model.users in names.groups:
                users = names.groups[model.users]
            elif local is not None:
                users = range(local, local + 1)
            else:
                self.report(
                    f"{place}.users",
                    f"no group or user {show(model.users)} in org {show(model.org)}",
                )
        if shape is None:
            return None
        exponential = shape.holding.kind == "exponential"
        return TrafficSpec(
            org=o,
            type=model.type,
            calls_per_hour=shape.peak_per_hour,
            holding_mean_ms=round(shape.holding.mean_ms),
            users=tuple(range(names.offset + users.start, names.offset + users.stop)),
            destinations=shape.destinations,
            rate_profile=shape.profile,
            # exponential: the shorthand's draws, whichever way it was written
            holding=None if exponential else shape.holding,
            weighted=shape.weighted,
        )

    def _calls(self, items: list[Any], end_ms: int | None) -> list[CallSpec | None]:
        """Every `[[calls]]` entry, plainly valid ones read without their model (`PlainCalls`)."""
        calls: list[CallSpec | None] = []
        for i, (item, found) in enumerate(zip(items, PlainCalls().read_all(items))):
            if found is None:
                model = self.check(schema.CallModel, item, f"calls[{i}]")
                if model is None:
                    calls.append(None)
                    continue
                found = PlainCall(model.at, model.org, model.user, model.type, parse_number(model.to),
                                  None if model.from_ is None else parse_number(model.from_),
                                  model.duration)
            calls.append(self._call(i, found, end_ms))
        return calls

    def _call(self, i: int, call: PlainCall, end_ms: int | None) -> CallSpec:
        """A checked entry's references: its org, its user, the keys its type needs."""
        at_ms, org_id, user_id, kind, to_number, from_number, duration_ms = call
        if end_ms is not None and at_ms >= end_ms:
            at, end = format_duration(at_ms), format_duration(end_ms)
            self.report(f"calls[{i}].at", f"{at} is not before the end of the simulation ({end})")
        o = self.org_index.get(org_id)
        if o is None:
            self.report(f"calls[{i}].org", f"unknown org {show(org_id)}")
        user = -1
        if kind == "toll_free":
            if user_id is not None:
                self.report(
                    f"calls[{i}].user",
                    "not allowed for toll_free calls (the caller is outside the org)",
                )
            if from_number is None:
                self.report(f"calls[{i}].from", "required for toll_free calls")
        elif user_id is None:
            self.report(f"calls[{i}].user", f"required for {kind} calls")
        elif o is not None and self.orgs[o].complete:
            names = self.orgs[o]
            local = names.get(user_id)
            if local is not None:
                user = names.offset + local
            else:
                user = self._call_user(f"calls[{i}].user", user_id, org_id, names)
        return CallSpec(at_ms, -1 if o is None else o, user, _CALL_KINDS[kind], to_number,
                        from_number or 0, duration_ms)

    def _call_user(self, place: str, user_id: str, org_id: str, names: OrgNames) -> int:
        local = names.get(user_id)
        if local is not None:
            return names.offset + local
        if user_id in names.groups:
            example = names.id_at(names.groups[user_id][0])
            self.report(
                place, f"{show(user_id)} is a group; name one of its users, like {show(example)}"
            )
        else:
            self.report(place, f"no user {show(user_id)} in org {show(org_id)}")
        return -1


class _Routes:
    """Whether some tariff could route a destination prefix: a tariff's prefix starts it, or
    it starts a tariff's prefix (dialled digits complete it).  Sets, not a scan of the
    tariffs per destination: 100,000 destinations against 5,000 tariffs are normal."""

    def __init__(self, prefixes: list[str]) -> None:
        self._prefixes = set(prefixes)
        self._lengths = sorted({len(p) for p in prefixes})
        self._heads = {p[:k] for p in prefixes for k in range(len(p) + 1)}

    def __call__(self, prefix: str) -> bool:
        return prefix in self._heads or any(prefix[:k] in self._prefixes for k in self._lengths)


def _items(raw: dict[str, Any], key: str) -> list[Any]:
    """An array of tables, or [] when absent or malformed (DocumentModel reported that)."""
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _workload(
    raw: dict[str, Any],
    sim: schema.SimulationModel | None,
    shapes: list[tuple[schema.TrafficModel | None, _TrafficShape | None]],
) -> estimate.Workload:
    """What the file asks for, read from the raw tables before any group is expanded.

    Values that do not check are left out: their problems are reported by the tables' own
    checks, and the estimate is of what would run once they are mended.
    """
    users, biggest, most, past_limit = 0, "", 0, ""
    for i, org in enumerate(_items(raw, "orgs")):
        items = org.get("users") if isinstance(org, dict) else None
        for j, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue
            count, place = 1, f"orgs[{i}].users[{j}]"
            if "group" in item:
                count = item.get("count")
                if not (units.is_integer(count) and 1 <= count <= schema.MAX_GROUP_COUNT):
                    continue
                place += ".count"
            users += count
            if users > schema.MAX_USERS and not past_limit:
                past_limit = place
            if count > most:
                biggest, most = place, count
    duration_ms = sim.duration if sim else 0
    sources = []
    for i, (_, shape) in enumerate(shapes):
        if shape is not None:
            sources.append(_source_work(f"traffic[{i}]", shape, sim))
    return estimate.Workload(
        duration_ms=duration_ms,
        users=users,
        biggest_users=biggest,
        sources=tuple(sources),
        explicit_calls=len(_items(raw, "calls")),
        orgs=len(_items(raw, "orgs")),
        users_past_limit=past_limit,
    )


def _source_work(place: str, shape: _TrafficShape, sim: schema.SimulationModel | None) -> estimate.Source:
    """A source as the estimate sees it: its mean rate over the run, its busiest hour's rate."""
    holding_ms = max(round(shape.holding.mean_ms), 0)
    if shape.profile is None:
        return estimate.Source(place, shape.peak_per_hour, holding_ms)
    if sim is not None and sim.duration > 0:
        start = units.epoch_ms(sim.start)
        mean = shape.profile.calls_between(start, start + sim.duration) * MS_PER_HOUR / sim.duration
    else:
        mean = sum(shape.profile.per_hour) / len(shape.profile.per_hour)
    rate_key = "calls_per_hour" if shape.model.calls_per_hour is not None else "rate_profile.rates"
    return estimate.Source(place, mean, holding_ms, peak_per_hour=shape.peak_per_hour,
                           rate_key=rate_key)
