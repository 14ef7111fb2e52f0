"""Real usage in and out: the Teams admin center PSTN usage export, callsim's way.

General layout:

- `_vocabulary`: the export's columns, values and formats, and how each maps onto callsim's
  call types, licences and numbers: the one home of these rules, for the writer
  (`callsim run --cdr-format teams`) and the reader (`callsim import`) alike.
- `_export_writer`: a run's CDRs in the export's layout (`teams_export`, an
  `outputs.ExtraCdrFile` that `callsim run` hands its CDR writer).
- `callsim import` (docs/usage-import.md), downward: `_sources` reads a CSV, a
  `Calls.Export.*.zip` or Graph JSON pages into text columns; `_rows` checks and types every
  row in columns (`UsageCalls`: fatal problems raise `UsageError`, the others become counted
  `UsageWarning`s, `_problems`); `_mapping` puts call types, capabilities and UPNs in callsim's
  terms; `_fit` fits arrivals per hour of the week, holding times, destinations and per-minute
  rates; `_model` gathers the org, users, traffic fits and tariffs (`ImportedModel`), which
  `_import` runs end to end; `_writer` writes the commented scenario and `_fit_report` the fit's
  PNGs and HTML page.
"""

from typing import TYPE_CHECKING

from ._export_writer import TeamsExport, teams_export
from ._vocabulary import (
    ARCHIVE_GLOB, ARCHIVE_PARAMETERS, CALL_TYPE_TO_TEAMS, CAPABILITY_DOMESTIC_MINUTES, CAPABILITY_LICENSES,
    CHARGE_DECIMALS, DOMESTIC, EXPORTED_END_REASONS, EXPORT_COLUMNS, EXPORT_ENCODING, EXPORT_FILE_GLOB,
    EXPORT_HEADER, EXPORT_LINE_END, GRAPH_FIELDS, INTERNATIONAL, NOT_RATED_CALL_TYPES, NUMBER_TYPE_SERVICE,
    NUMBER_TYPE_TOLL_FREE, NUMBER_TYPE_USER, OUTBOUND_CALL_TYPES, TEAMS_CALL_TYPES, TIME_FORMAT, UnknownValue,
    callsim_call_type, capability, charge_text, country_code, default_domain, destination_dialed,
    domestic_international, export_file_name, format_time, licenses_for, number_digits, number_kind,
    number_type, parse_time, upn, user_id_from_upn,
)
# The import's names are loaded on first use (PEP 562): `callsim run --cdr-format teams` needs
# only the vocabulary and the writer above, and importing polars, phonenumbers and the fit into
# every run would start polars' thread pool before the run forks its file workers.
_IMPORT_NAMES = {
    "_fit": ("EMPIRICAL_MIN_CALLS", "HoldingFit", "Period", "RateFit", "fit_holding", "fit_rates", "hour_of_week"),
    "_fit_report": ("FitQuality", "write_fit_report"),
    "_import": ("choose_period", "import_usage", "refuse_too_large"),
    "_mapping": ("call_type_kind", "user_ids", "user_licenses"),
    "_model": ("ImportedModel", "TrafficFit"),
    "_problems": ("UsageError", "UsageWarning"),
    "_rows": ("UsageCalls", "check_rows"),
    "_sources": ("Source", "read_source"),
    "_writer": ("ESTIMATE_MARK", "scenario_text"),
}
_MODULE_OF = {name: module for module, names in _IMPORT_NAMES.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ._fit import EMPIRICAL_MIN_CALLS, HoldingFit, Period, RateFit, fit_holding, fit_rates, hour_of_week
    from ._fit_report import FitQuality, write_fit_report
    from ._import import choose_period, import_usage, refuse_too_large
    from ._mapping import call_type_kind, user_ids, user_licenses
    from ._model import ImportedModel, TrafficFit
    from ._problems import UsageError, UsageWarning
    from ._rows import UsageCalls, check_rows
    from ._sources import Source, read_source
    from ._writer import ESTIMATE_MARK, scenario_text

__all__ = [
    "TeamsExport", "teams_export",
    "EMPIRICAL_MIN_CALLS", "ESTIMATE_MARK", "FitQuality", "HoldingFit", "ImportedModel", "Period", "RateFit", "Source",
    "TrafficFit", "UsageCalls", "UsageError", "UsageWarning", "call_type_kind", "check_rows", "choose_period",
    "fit_holding", "fit_rates", "hour_of_week", "import_usage", "read_source", "refuse_too_large", "scenario_text", "user_ids",
    "user_licenses", "write_fit_report",
    "ARCHIVE_GLOB", "ARCHIVE_PARAMETERS", "CALL_TYPE_TO_TEAMS", "CAPABILITY_DOMESTIC_MINUTES",
    "CAPABILITY_LICENSES", "CHARGE_DECIMALS", "DOMESTIC", "EXPORTED_END_REASONS", "EXPORT_COLUMNS",
    "EXPORT_ENCODING", "EXPORT_FILE_GLOB", "EXPORT_HEADER", "EXPORT_LINE_END", "GRAPH_FIELDS",
    "INTERNATIONAL", "NOT_RATED_CALL_TYPES", "NUMBER_TYPE_SERVICE", "NUMBER_TYPE_TOLL_FREE",
    "NUMBER_TYPE_USER", "OUTBOUND_CALL_TYPES", "TEAMS_CALL_TYPES", "TIME_FORMAT", "UnknownValue",
    "callsim_call_type", "capability", "charge_text", "country_code", "default_domain", "destination_dialed",
    "domestic_international", "export_file_name", "format_time", "licenses_for", "number_digits",
    "number_kind", "number_type", "parse_time", "upn", "user_id_from_upn",
]
