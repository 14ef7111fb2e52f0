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

import importlib

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

# `callsim import`'s modules load on first use (PEP 562): they bring polars (~0.3 s, and its
# threads, which keep `callsim run` from forking its file workers), and a run that writes the
# teams export, or its worker process, needs only the vocabulary and the writer.
_LAZY = {
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
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    """A name of a lazily loaded module: imported now, then kept here."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


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
