"""The `callsim plan` subcommand: its options and its glue (the method is `simulator.plan`).

Kept out of cli.py so that file only gains two lines, and so that nothing of the plan (scipy,
Dask) is imported until the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ._cli_common import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, UsageError, load_checked, path, whole_number

MAX_SEEDS = 10_000_000
MAX_WORKERS = 4096


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, both excluded, got {text}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def add_parsers(command: Callable[..., argparse.ArgumentParser]) -> None:
    """`plan`, made by cli.py's `command(name, help, examples, exits)`."""
    plan = command("plan", "the cheapest credit settings with a cut risk below a target (docs/plan.md)",
                   ["callsim plan scenarios/quickstart.toml --org contoso --max-cut-risk 0.05",
                    "callsim plan my.toml --org contoso --max-cut-risk 0.01 --out out/plan",
                    "callsim plan my.toml --org c --max-cut-risk 0.01 --scheduler tcp://h:8786"],
                   [(EXIT_OK, "a recommendation (or: no credits needed) is printed"),
                    (EXIT_CHECK_FAILED, "no setting passed the target, or --out could not be written"),
                    (EXIT_BAD_INPUT[0], "bad input: the scenario, an org it does not have, an option")])
    plan.add_argument("scenario", type=Path, metavar="SCENARIO", help="the scenario file (.toml)")
    plan.add_argument("--org", required=True, metavar="ID", help="the org whose credits to plan")
    plan.add_argument("--max-cut-risk", type=_fraction, required=True, metavar="P",
                      help="the largest acceptable probability that a horizon has any call cut for "
                           "lack of credit (e.g. 0.01)")
    plan.add_argument("--confidence", type=_fraction, default=0.95, metavar="C",
                      help="confidence of the risk's upper bound (default: 0.95)")
    plan.add_argument("--seeds", type=whole_number(1, MAX_SEEDS), default=None, metavar="N",
                      help="fresh seeds per verification (default: the fewest that can show the target: "
                           "299 for 0.01 at 95 %%; more seeds allow a few cuts and a cheaper setting)")
    plan.add_argument("--max-recharges-per-month", type=_positive, default=30.0, metavar="N",
                      help="the most auto-recharges a month on average (default: 30, about one a day)")
    plan.add_argument("--card-renewed", action="store_true",
                      help="plan as if the payment card stays valid (default: the scenario's "
                           "card_expires holds, recharges fail after it)")
    plan.add_argument("--scheduler", default=None, metavar="ADDR",
                      help="a running Dask scheduler (tcp://HOST:8786); default: a local cluster")
    plan.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=None, metavar="N",
                      help="worker processes of the local cluster (default: one per core)")
    plan.add_argument("--out", type=path, default=None, metavar="DIR",
                      help="write plan.json and plan.html (the evidence) here")
    plan.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    plan.add_argument("--force", action="store_true",
                      help="accept a scenario whose estimated memory exceeds this machine")


def main(args: argparse.Namespace) -> int:
    """Run `callsim plan`; ScenarioError and UsageError are cli.py's to print (exit 2)."""
    from . import plan

    scenario = load_checked(args.scenario, args.force)

    def say(line: str) -> None:
        if not args.quiet:
            print(f"callsim plan: {line}", file=sys.stderr, flush=True)

    try:
        result = plan.plan_scenario(
            args.scenario, scenario, args.org, args.max_cut_risk, confidence=args.confidence,
            seeds=args.seeds, max_recharges_per_month=args.max_recharges_per_month,
            card_renewed=args.card_renewed, scheduler=args.scheduler, workers=args.workers,
            progress=not args.quiet, say=say)
    except (plan.NoSettingPasses, plan.RunFailed) as err:
        print(f"callsim: {err}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except plan.PlanError as err:
        raise UsageError(str(err)) from None
    print(plan.text(result, str(args.scenario)), end="")
    if args.out is not None:
        try:
            written = plan.write(result, str(args.scenario), args.out)
        except OSError as err:
            print(f"callsim: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
            return EXIT_CHECK_FAILED
        print(f"written: {', '.join(str(p) for p in written)}")
    return EXIT_OK
