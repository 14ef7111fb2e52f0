"""`callsim import`: usage exports in, an editable scenario and its fit report out
(docs/usage-import.md).  Heavy modules are imported when the command runs, not when the
parser is built."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ._cli_common import EXIT_OK, EXIT_USAGE, UsageError, path

_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _utc_offset(text: str) -> int:
    match = _OFFSET.fullmatch(text.strip())
    if text.strip() in ("Z", "+00:00", "-00:00"):
        return 0
    if match is None or int(match[2]) > 14 or int(match[3]) > 59 or int(match[2]) * 60 + int(match[3]) > 14 * 60:
        raise argparse.ArgumentTypeError(f'expected an offset "+HH:MM" or "-HH:MM" (at most 14:00), got "{text}"')
    minutes = int(match[2]) * 60 + int(match[3])
    return -minutes if match[1] == "-" else minutes


def join_negative_offsets(argv: list[str]) -> list[str]:
    """`--utc-offset -05:00` as `--utc-offset=-05:00`.

    argparse takes a value that starts with '-' and is not a plain number for an option, so the
    way people write a western offset would be refused as a missing argument.
    """
    joined: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            joined.append(word)
            joined.extend(words)
            break
        if word == "--utc-offset":
            value = next(words, None)
            if value is not None and _OFFSET.fullmatch(value.strip()):
                joined.append(f"{word}={value}")
                continue
            joined.append(word)
            if value is not None:
                joined.append(value)
            continue
        joined.append(word)
    return joined


def add_parser(command) -> None:
    """Add `import` to the top parser (`command` is cli's sub-parser factory)."""
    parser = command(
        "import", "a Teams PSTN usage export in, an editable scenario and its fit report out",
        ["callsim import PSTN.calls.2026-11-30.csv --out mine.toml",
         "callsim import Calls.Export.1234.zip --out mine.toml --utc-offset -05:00",
         "callsim import page1.json page2.json --out mine.toml --no-report"],
        [(EXIT_OK, "the scenario is written (and the fit report beside it)"),
         (EXIT_USAGE, "bad input: an export that cannot be read (one line naming file, row and "
                      "problem), an option, or --out exists without --force")])
    parser.add_argument("usage", nargs="+", type=Path, metavar="USAGE",
                        help="export files: PSTN.calls.*.csv, Calls.Export.*.zip, or getPstnCalls "
                             "JSON pages; several are imported as one")
    parser.add_argument("--out", type=path, required=True, metavar="SCENARIO.toml",
                        help="the scenario to write")
    parser.add_argument("--report", type=path, default=None, metavar="FILE.html",
                        help="the fit report (default: SCENARIO.fit.html beside --out); its PNGs "
                             "go in a folder named after it")
    parser.add_argument("--no-report", action="store_true", help="write the scenario only")
    parser.add_argument("--utc-offset", type=_utc_offset, default=None, metavar="+HH:MM",
                        help="the tenant's local clock, for the hours of the week (default: the "
                             "offset the Start Times are written with, else UTC)")
    parser.add_argument("--org", default=None, metavar="ID",
                        help="the org's id (default: from the UPNs' domain, contoso for "
                             "alice@contoso.com)")
    parser.add_argument("--force", action="store_true",
                        help="replace --out and the report if they exist, and read exports larger "
                             "than this machine's memory seems to allow (also CALLSIM_FORCE=1)")


def main(args: argparse.Namespace) -> int:
    from .scenario import estimate, parse_scenario
    from .usage import UsageError as ExportError
    from .usage import import_usage, scenario_text

    force = estimate.forced(args.force)
    report = None if args.no_report else (args.report or args.out.with_name(args.out.stem + ".fit.html"))
    for target in (args.out, report):
        if target is not None and target.exists() and not args.force:
            raise UsageError(f"{target} exists: --force to replace it")
    if args.org is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", args.org):
        raise UsageError(f'--org: expected letters, digits, ".", "_" or "-", got "{args.org}"')
    try:
        model = import_usage(args.usage, utc_offset_min=args.utc_offset, org=args.org, force=force)
    except ExportError as err:
        print(f"callsim: {err}", file=sys.stderr)
        return EXIT_USAGE
    text = scenario_text(model, report=os.path.relpath(report, args.out.parent) if report else None)
    parse_scenario(text, str(args.out))  # the file must load: a ScenarioError here is a bug
    _write(args.out, text)
    for warning in model.warnings:
        print(f"warning: {warning.line()}", file=sys.stderr)
    if report is not None:
        from .usage import write_fit_report

        try:
            write_fit_report(model, report)
        except OSError as err:
            raise UsageError(f"cannot write the fit report {report}: {err.strerror or err}") from None
    traffic = ", ".join(f"{fit.type} {fit.calls:,}" for fit in model.traffic) or "no simulated calls"
    print(f"{args.out}: {len(model.users):,} users, {traffic}"
          + (f"; fit report {report}" if report else ""))
    return EXIT_OK


def _write(target: Path, text: str) -> None:
    """Write through a temporary file renamed into place: an interrupted import leaves no
    half-written scenario.  Missing folders are created, as `run --out` creates its own."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problem = "a file is in the way of its folder" if isinstance(err, (FileExistsError, NotADirectoryError)) \
            else err.strerror or err
        raise UsageError(f"cannot write {target}: {problem}") from None
    temporary = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except OSError as err:
        raise UsageError(f"cannot write {target}: {err.strerror or err}") from None
    finally:  # also on Ctrl-C: no stray temporary file
        temporary.unlink(missing_ok=True)
