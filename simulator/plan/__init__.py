"""`callsim plan`: how much credit to buy and which auto-recharge settings, at what risk.

General layout:

- `_stats`: the risk of a credit-caused cut from seeds, with exact Clopper-Pearson bounds
  (scipy's beta quantiles) and the seeds a target needs.
- `_amounts`: the admin center's grid of typed amounts (whole units, three significant digits).
- `_model`: settings, one org's outcome per run, the evidence of a set of runs, the plan.
- `_search`: the search itself, against any `Evaluator` (pure: no simulation in it).
- `_runner`: the evaluator that runs the scenario through `simulator.sweep.run_many` (Dask).
- `_scenario`: `plan_scenario`, the question checked against a scenario file, then searched.
- `_output`: the recommendation as text, plan.json and the HTML evidence page.

The method, the cost definition and how to read the risk: docs/plan.md.
"""

from ._model import MONTH_MS, Evaluator, Evidence, Outcome, Plan, Rejection, Setting
from ._output import document, text, write
from ._runner import RunFailed, SweepEvaluator
from ._scenario import plan_scenario
from ._search import NoSettingPasses, PlanError, Question, SeedSupply, make_plan
from ._stats import Risk, clopper_pearson, cuts_allowed, percent_up, risk_of, seeds_needed, upper_bound

__all__ = [
    "MONTH_MS", "Evaluator", "Evidence", "NoSettingPasses", "Outcome", "Plan", "PlanError", "Question",
    "Rejection", "Risk", "RunFailed", "SeedSupply", "Setting", "clopper_pearson", "cuts_allowed", "document", "make_plan",
    "percent_up", "plan_scenario", "risk_of", "seeds_needed", "SweepEvaluator", "text", "upper_bound", "write",
]
