"""What the user sees: the progress bar while the run works, the summary and missing tables, the dry run."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgressBar
from rich.table import Table

from pipeline.priors.faults import Usage
from pipeline.priors.runner import PlannedClass, Progress, RunReport, Tally

DRY_RUN_ROWS = 40


class BarProgress(Progress):
    def __init__(self, console: Console, description: str = "generating priors"):
        self.console = console
        self.description = description
        self._bar: RichProgressBar | None = None
        self._task = None

    def start(self, total: int) -> None:
        self._bar = RichProgressBar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total)

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)

    def add_total(self, delta: int) -> None:
        task = self._bar.tasks[0]
        self._bar.update(self._task, total=max(task.completed, (task.total or 0) + delta))

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def money(cost: float | None) -> str:
    return "unknown" if cost is None else f"${cost:,.4f}"


def billed(usage: Usage) -> str:
    parts = []
    if usage.prompt_tokens or usage.completion_tokens:
        parts.append(f"{usage.prompt_tokens:,} in + {usage.completion_tokens:,} out tokens")
    if usage.images:
        parts.append(f"{usage.images:,} images")
    return ", ".join(parts) or "-"


def summary_table(report: RunReport) -> Table:
    table = Table(title=f"priors: {len(report.classes) - len(report.incomplete)} of {len(report.classes)} classes "
                        f"complete in {report.seconds:.1f} s")
    for column in ("item", "generated", "cached", "failed", "billed", "est. cost"):
        table.add_column(column, justify="left" if column in ("item", "billed") else "right")
    total = Tally()
    for label, tally in (("texts", report.texts), ("images", report.images)):
        table.add_row(label, str(tally.generated), str(tally.cached), str(tally.failed), billed(tally.usage),
                      money(tally.usage.cost_usd))
        total = Tally(total.generated + tally.generated, total.cached + tally.cached, total.failed + tally.failed,
                      total.usage + tally.usage)
    table.add_row("total", str(total.generated), str(total.cached), str(total.failed), billed(total.usage),
                  money(total.usage.cost_usd), style="bold")
    return table


def missing_table(report: RunReport) -> Table:
    """One row per incomplete class: what it lacks and why."""
    table = Table(title="classes without their k text-image pairs")
    table.add_column("class")
    table.add_column("missing")
    table.add_column("why")
    for result in report.incomplete:
        if result.failures:
            for failure in result.failures:
                table.add_row(result.name, failure.what, f"{failure.reason}: {failure.detail}")
        elif result.texts is None:
            table.add_row(result.name, "texts", "not made (run interrupted)")
        else:
            absent = [str(i + 1) for i, image in enumerate(result.images) if not image]
            table.add_row(result.name, "images " + ", ".join(absent), "not made (run interrupted)")
    return table


def dry_run_table(plan: list[PlannedClass], k: int, text_usage: Callable[[PlannedClass], Usage],
                  image_usage: Usage) -> tuple[Table, dict]:
    """Per class what would be made, and the estimated cost of making it."""
    table = Table(title="dry run: what would be generated (no calls made, nothing written)")
    for column in ("class", "texts", "images", "est. cost"):
        table.add_column(column, justify="left" if column == "class" else "right")
    totals = {"classes": len(plan), "text_calls": 0, "image_calls": 0, "cost": Usage()}
    for row, planned in enumerate(plan):
        texts_missing = planned.texts is None
        images_missing = k if planned.images_cached is None else sum(not c for c in planned.images_cached)
        cost = Usage()
        if texts_missing:
            cost = cost + text_usage(planned)
        for _ in range(images_missing):
            cost = cost + image_usage
        totals["text_calls"] += int(texts_missing)
        totals["image_calls"] += images_missing
        totals["cost"] = totals["cost"] + cost
        if row < DRY_RUN_ROWS:
            table.add_row(planned.name, "1 call" if texts_missing else "cached",
                          f"{images_missing} calls" if images_missing else "cached", money(cost.cost_usd))
    if len(plan) > DRY_RUN_ROWS:
        table.add_row(f"... {len(plan) - DRY_RUN_ROWS} more classes", "", "", "")
    table.add_row("total", f"{totals['text_calls']} calls", f"{totals['image_calls']} calls",
                  money(totals["cost"].cost_usd), style="bold")
    return table, totals
