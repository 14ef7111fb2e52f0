"""Real usage in and out: the Teams admin center PSTN usage export, callsim's way.

General layout:

- `_vocabulary`: the export's columns, values and formats, and how each maps onto callsim's
  call types, licences and numbers: the one home of these rules, for the writer
  (`callsim run --cdr-format teams`) and the reader (`callsim import`) alike.
- `_export_writer`: a run's CDRs in the export's layout (`teams_export`, an
  `outputs.ExtraCdrFile` that `callsim run` hands its CDR writer).
"""

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

__all__ = [
    "TeamsExport", "teams_export",
    "ARCHIVE_GLOB", "ARCHIVE_PARAMETERS", "CALL_TYPE_TO_TEAMS", "CAPABILITY_DOMESTIC_MINUTES",
    "CAPABILITY_LICENSES", "CHARGE_DECIMALS", "DOMESTIC", "EXPORTED_END_REASONS", "EXPORT_COLUMNS",
    "EXPORT_ENCODING", "EXPORT_FILE_GLOB", "EXPORT_HEADER", "EXPORT_LINE_END", "GRAPH_FIELDS",
    "INTERNATIONAL", "NOT_RATED_CALL_TYPES", "NUMBER_TYPE_SERVICE", "NUMBER_TYPE_TOLL_FREE",
    "NUMBER_TYPE_USER", "OUTBOUND_CALL_TYPES", "TEAMS_CALL_TYPES", "TIME_FORMAT", "UnknownValue",
    "callsim_call_type", "capability", "charge_text", "country_code", "default_domain", "destination_dialed",
    "domestic_international", "export_file_name", "format_time", "licenses_for", "number_digits",
    "number_kind", "number_type", "parse_time", "upn", "user_id_from_upn",
]
