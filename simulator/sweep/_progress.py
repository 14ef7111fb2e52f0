"""The sweep's progress bar: runs finished out of runs asked for, on stderr.

rich draws it on a terminal; elsewhere (stderr redirected to a log) it prints nothing live, and
the command prints its one-line outcome at the end anyway.
"""

from __future__ import annotations

from types import TracebackType


class RunProgress:
    """`with RunProgress(total, shown) as bar: bar.advance(failed=False)`; a no-op when not shown."""

    def __init__(self, total: int, shown: bool, workers_text: str = "") -> None:
        self._bar = None
        self._task = None
        self._failed = 0
        self._label = workers_text
        if not shown:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]sweep[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("runs"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._task = self._bar.add_task(workers_text, total=total)

    def __enter__(self) -> "RunProgress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, failed: bool = False) -> None:
        """One more run finished (or failed)."""
        if self._bar is None:
            return
        if failed:
            self._failed += 1
            self._bar.update(self._task, description=f"{self._label} [red]{self._failed} failed[/red]")
        self._bar.advance(self._task)
