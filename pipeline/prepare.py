"""Stage `prepare`: a data set's own annotation files -> the canonical index and the zero-shot split.

Writes ``index.json`` (every usable video), ``split.json`` (seen/unseen classes, train/test videos) and
``skipped.json`` (what was dropped and why) to the output folder.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.common import exit_on_user_error, load_params
from pipeline.data.build import check_split_id, prepare
from pipeline.params_schema import validate_section

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params.yaml with a `prepare` section."),
    out: Path = typer.Option(Path("cache/prepare"), help="Output folder."),
) -> None:
    """Build the canonical index and the zero-shot split of the configured data set."""
    cfg = validate_section(load_params(params), "prepare", params)
    check_split_id(cfg, cfg["split_id"], params)
    index, split = prepare(cfg, out, str(params))
    print(f"{index.dataset}: {len(index.videos)} videos, {len(index.classes)} classes; "
          f"{split.protocol}: {len(split.seen)} seen / {len(split.unseen)} unseen classes, "
          f"{len(split.train_videos)} train / {len(split.test_videos)} test videos")
    if index.skipped:
        print(f"skipped {len(index.skipped)} item(s), see {out / 'skipped.json'}; first: "
              f"{index.skipped[0]['video']}: {index.skipped[0]['reason']}")


if __name__ == "__main__":
    app()
