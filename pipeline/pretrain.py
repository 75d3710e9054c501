"""Stage `pretrain`: pretrain the demo world's frozen CLIP (`grizal-demo`) contrastively on synthetic stills.

Reads the ``pretrain`` section and ``prepare.dataset``: with another data set nothing is trained, only a note
(real data sets use real CLIP weights: ``extract.clip.pretrained: openai``). Writes ``clip.pt``, the checkpoint
``extract.clip.pretrained`` names, and ``report.json`` (settings, seconds, losses, held-out zero-shot accuracy).
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.common import atomic_write_text, exit_on_user_error, load_params
from pipeline.params_schema import validate_section

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])
NOT_TRAINED = "NOT_TRAINED.txt"  # all the stage writes when params prepares another data set


def pretrain_settings(params: Path) -> tuple[str, dict]:
    """(the data set params prepares, the checked ``pretrain`` section; empty when it is not the demo world)."""
    values = load_params(params)
    dataset = validate_section(values, "prepare", params)["dataset"]
    return dataset, validate_section(values, "pretrain", params) if dataset == "demo" else {}


@app.command()
@exit_on_user_error
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Read the `pretrain` section of this params.yaml."),
    out: Path = typer.Option(Path("cache/pretrain"), help="Output folder (clip.pt and report.json)."),
    workers: int = typer.Option(0, help="Processes rendering the corpus (0: one per available core)."),
) -> None:
    """Pretrain the demo CLIP; with --params naming another data set, only write a note saying why not."""
    dataset, section = pretrain_settings(params)
    out.mkdir(parents=True, exist_ok=True)
    if dataset != "demo":
        atomic_write_text(out / NOT_TRAINED, f"not trained: {params} prepares data set '{dataset}', not the demo "
                                             "world (prepare.dataset); its frozen CLIP is a real one "
                                             "(extract.clip.model and extract.clip.pretrained)\n")
        print(f"pretrain: not trained ({params} prepares '{dataset}') -> {out / NOT_TRAINED}")
        return
    (out / NOT_TRAINED).unlink(missing_ok=True)
    from pipeline.pretraining.loop import available_cores
    from pipeline.pretraining.run import CHECKPOINT, pretrain

    report = pretrain(section, out, workers or available_cores())
    acc, sec = report["held_out"], report["seconds"]
    print(f"pretrain: {report['steps']} steps in {sec['total']:.0f} s (corpus {sec['corpus']:.0f} s), final loss "
          f"{report['loss']['final']:.3f}; held-out zero-shot shape {acc['shape']:.1%}, colour {acc['color']:.1%}, "
          f"motion cue {acc['motion']:.1%} ({acc['stills']} stills each) -> {out / CHECKPOINT}")


if __name__ == "__main__":
    app()
