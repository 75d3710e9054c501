"""One generation run: make what is missing of k descriptions and k paired images per class, write priors.json.

``run`` is what the generate stage and ``grizal localize`` call; it prints the plan (dry run) or the summary
and returns the exit status (0, ``EXIT_INCOMPLETE``, ``EXIT_INTERRUPTED``). Every finished item is cached, so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import signal
import threading

from rich.console import Console

from pipeline.common import UserError
from pipeline.priors.backends import make_image_backend, make_text_backend
from pipeline.priors.cache import PriorCache
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import FatalBackendError
from pipeline.priors.report import BarProgress, dry_run_table, missing_table, summary_table
from pipeline.priors.runner import PriorRunner, has_work, priors_entries, published_items

EXIT_INCOMPLETE = 1
EXIT_INTERRUPTED = 130


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(cfg: GenerateConfig, names: list[str], dry_run: bool = False, console: Console | None = None,
        quiet_when_cached: bool = False) -> int:
    """Generate what is missing for `names`, write priors.json, print the tables; returns the exit status.
    With `quiet_when_cached`, a run with nothing to make (every item cached) prints nothing."""
    console = console or Console()
    errors = Console(stderr=True)
    text, image = make_text_backend(cfg), make_image_backend(cfg)
    cache = PriorCache(cfg.out, cfg.store)
    quiet = quiet_when_cached and not dry_run and not has_work(PriorRunner(cfg, text, image, cache).plan(names))
    shown = Console(quiet=True) if quiet else errors
    shared = f" (items cached in {cache.store})" if cache.shared else ""
    shown.print(f"{len(names)} classes, k={cfg.k}: texts from {text.name} ({text.model}), "
                f"images from {image.name} ({image.model}) -> {cfg.out}{shared}")
    if dry_run:
        try:
            plan = PriorRunner(cfg, text, image, cache).plan(names)
        except FatalBackendError as err:
            raise UserError(err.where, err.problem) from None
        table, _ = dry_run_table(plan, cfg.k, lambda p: text.estimate(p.messages, cfg.k), image.estimate())
        console.print(table)
        return 0
    runner = PriorRunner(cfg, text, image, cache, progress=BarProgress(shown))
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
    try:
        report = runner.run(names)
    except KeyboardInterrupt:
        # A second Ctrl-C while the requests in flight were finishing: every finished item is on disk already.
        errors.print("stopped: everything generated so far is cached; run the same command again to finish")
        return EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    complete = priors_entries(report)
    cache.publish(published_items(report))
    priors_path = cache.write_priors(cfg.k, complete)
    made = report.texts.generated + report.images.generated + report.texts.failed + report.images.failed
    if made or not quiet:  # a cached item that turned out unusable was remade: say what it cost
        console.print(summary_table(report))
    shown.print(f"wrote {priors_path} ({len(complete)} of {len(names)} classes complete)")
    if report.interrupted:
        errors.print("interrupted: everything generated so far is cached; run the same command again to finish")
        return EXIT_INTERRUPTED
    if report.incomplete:
        console.print(missing_table(report))
        return EXIT_INCOMPLETE
    return 0
