"""Scenario files: TOML in, a validated `Scenario` out (docs/scenarios.md).

General layout:

- `_loader`: `load_scenario` / `parse_scenario`, the TOML document turned into the
  rating core's setup (`rating_core.RatingSetup`), traffic sources and explicit calls;
  every problem is collected into one `ScenarioError` naming file, line and field path.
- `_schema`: the pydantic model of the document, field by field.
- `_expect_schema`: the `[[expect]]` tables, checked by the loader and kept as frozen
  `Expectation` objects that `simulator.expect` checks a finished run against.
- `_sip`: users' SIP identities (numbers, SIP user names) and orgs' SIP credentials, checked
  across tables while the loader walks the file (`SipConfig`).
- `_traffic_schema`: a traffic source's shape tables (`rate_profile`, `holding`, weighted
  `destinations`), checked into the `_traffic_shapes` values the generator draws from:
  `RateProfile`, `Holding`, `Destination`.
- `_toml_lines`: which line of the file a field path sits on, for error messages.
- `estimate`: a scenario's memory, disk and time before it runs; refusals and warnings.
  A public submodule, so that tests and `--force` can stand in for this machine.
"""

from . import estimate
from ._expect_schema import (
    EVENT_KINDS,
    Bound,
    CallExpectation,
    Context,
    EventExpectation,
    Expectation,
    Expected,
    TotalsExpectation,
    parse_expectations,
    say_ms,
)
from ._schema import CREDITS_MONEY_KEYS, DEFAULT_SIP_REALM, ORG_TABLE_KEYS
from ._sip import NumberBlock, OrgSip, SipConfig, org_env_var, sip_password_env_var
from ._traffic_shapes import Destination, Holding, RateProfile
from ._loader import CallSpec, Problem, Scenario, ScenarioError, TrafficSpec, load_scenario, parse_scenario

__all__ = [
    "CREDITS_MONEY_KEYS", "DEFAULT_SIP_REALM", "EVENT_KINDS", "ORG_TABLE_KEYS", "Bound", "CallExpectation", "CallSpec", "Context", "Destination",
    "EventExpectation", "Expectation", "Expected", "Holding", "NumberBlock", "OrgSip", "Problem",
    "RateProfile", "Scenario", "ScenarioError", "SipConfig", "TotalsExpectation", "TrafficSpec",
    "estimate", "load_scenario", "org_env_var", "parse_expectations", "parse_scenario", "say_ms",
    "sip_password_env_var",
]
