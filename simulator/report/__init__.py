"""`callsim report`: a finished run's --out directory as one self-contained HTML page
(docs/report.md).

General layout:

- `_report`: `build_report` and the command's `main`: what goes on the page.
- `_data`: the directory read into integer columns (`RunData`); a file that is
  missing, malformed or from another run is a `ReportError`.
- `_series`: those columns turned into time profiles (balances, pools, active calls).
- `_charts`: the profiles drawn with matplotlib (imported only when a report is made).
- `_html`: the page itself, charts inlined.
"""

from ._data import ReportError, RunData, load_run
from ._report import MAX_ORG_PANELS, Report, build_report, main, rank_orgs

__all__ = ["MAX_ORG_PANELS", "Report", "ReportError", "RunData", "build_report", "load_run", "main", "rank_orgs"]
