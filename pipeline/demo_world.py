"""Stage `demo_world`: render the seeded demo world (``pipeline.data.demo``) as real mp4 files plus annotations.

Reads the ``demo`` section, and ``prepare.dataset``: with another data set nothing is rendered, only a note.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.common import atomic_write_text, exit_on_user_error, load_params
from pipeline.data.demo import DemoConfig, render_world
from pipeline.params_schema import validate_section

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])
NOT_RENDERED = "NOT_RENDERED.txt"  # all the demo_world stage writes when params prepares another data set


def demo_settings(params: Path | None, seed: int | None) -> tuple[str, DemoConfig]:
    """(the data set params prepares, the demo world's config): each checked at the door, the --seed override
    too (named as such when it is the bad value)."""
    values = load_params(params) if params else {}
    dataset = validate_section(values, "prepare", params)["dataset"] if params else "demo"
    section = validate_section(values, "demo", params) if params and dataset == "demo" else {}
    if seed is not None:
        section = validate_section({"demo": {**section, "seed": seed}}, "demo", "--seed")
    return dataset, DemoConfig.from_section(section)


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(None, help="Read the `demo` section of this params.yaml."),
    out: Path = typer.Option(Path("cache/demo"), help="Output folder (videos/ and annotations.json)."),
    seed: int = typer.Option(None, help="Override the seed."),
    workers: int = typer.Option(2, help="Processes rendering videos in parallel."),
) -> None:
    """Generate the demo world: real mp4 files plus an ActivityNet-format annotation JSON.

    With --params naming another data set (prepare.dataset), nothing is rendered: only a note saying so."""
    dataset, cfg = demo_settings(params, seed)
    if dataset != "demo":
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / NOT_RENDERED, f"not rendered: {params} prepares data set '{dataset}', not the demo "
                                              "world (prepare.dataset)\n")
        print(f"demo world: not rendered ({params} prepares '{dataset}') -> {out / NOT_RENDERED}")
        return
    annotations = render_world(out, cfg, workers)
    n_seg = sum(len(v["annotations"]) for v in annotations["database"].values())
    print(f"demo world: {len(annotations['database'])} videos, {n_seg} action instances -> {out}")


if __name__ == "__main__":
    app()
