"""Checkpoints load without running code from the file: crafted and foreign files get one line and exit 2
(`--model`, `--checkpoint`); a foreign resume checkpoint is reported and training starts afresh."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from support.cli import invoke_in

from grizal.model import build_model
from pipeline.apps.localize import app as localize_app
from pipeline.common import UserError
from pipeline.evaluate import app as evaluate_app
from pipeline.modelling.checkpoint import MODEL_KEYS, load_model, load_resume, save_model, save_resume
from pipeline.modelling.fit import TrainConfig, train


class Payload:
    """Unpickling this runs a command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted(path: Path, marker: Path, as_torch_file: bool) -> Path:
    state = {"model": Payload(marker), "model_config": {}}
    if as_torch_file:
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    return path


FOREIGN = {
    "empty": (lambda p: p.write_bytes(b""), "an empty file"),
    "text": (lambda p: p.write_text("not a checkpoint\n" * 20), "not a PyTorch save file"),
    "zip": (lambda p: zipfile.ZipFile(p, "w").close(), "a zip archive but not a PyTorch save file"),
    "zip with a file": (lambda p: _zip_with_file(p), "a zip archive but not a PyTorch save file"),
    "tensor": (lambda p: torch.save(torch.zeros(3), p), "it holds a tensor"),
    "dict": (lambda p: torch.save({"weights": torch.zeros(3)}, p), "no 'model' entry"),
}


def _zip_with_file(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")


@pytest.mark.parametrize("as_torch_file", [True, False], ids=["torch-zip", "raw-pickle"])
def test_a_crafted_pickle_never_runs(tmp_path, as_torch_file):
    marker = tmp_path / "payload-ran"
    path = crafted(tmp_path / "model.pt", marker, as_torch_file)
    with pytest.raises(UserError, match="not a grizal checkpoint") as model_err:
        load_model(path)
    with pytest.raises(UserError, match="not a grizal checkpoint"):
        load_resume(path)
    assert not marker.exists()
    assert str(path) in str(model_err.value) and "\n" not in str(model_err.value)
    if as_torch_file:
        assert "refused without running them" in str(model_err.value)


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_foreign_files_are_named_for_what_they_are_not(tmp_path, kind):
    make, expected = FOREIGN[kind]
    path = tmp_path / f"{kind}.pt"
    make(path)
    for load in (load_model, load_resume):
        with pytest.raises(UserError) as err:
            load(path)
        message = str(err.value)
        assert message.startswith(f"{path}: not a grizal checkpoint: ") and "\n" not in message
        if kind != "dict" or load is load_model:
            assert expected in message


def test_round_trip_and_each_kind_refuses_the_other(tmp_path):
    config = {"rgb_dim": 8, "flow_dim": 8, "prior_dim": 8, "width": 16, "heads": 2, "vle_layers": 1,
              "ofe_layers": 1, "ft_layers": 1, "k": 2}
    model = build_model(config)
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(), "loss_config": {"a": 1.0},
             "train_config": {"betas": (0.9, 0.999)}, "T": 16, "seen_classes": ["a", "b"],
             "encoders": {"rgb": {"model": "x"}}, "digest": "d", "feature_stats": {"rgb": {"mean": [0.0]}}}
    save_model(tmp_path / "model.pt", state)
    loaded, back = load_model(tmp_path / "model.pt")
    assert set(back) == set(MODEL_KEYS) and back["train_config"]["betas"] == (0.9, 0.999)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(),
                                                 strict=True))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    resume = {"digest": "d", "epoch": 0, "history": [{"epoch": 1, "total": 0.5}], "model": model.state_dict(),
              "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
              "torch_rng": torch.get_rng_state()}
    save_resume(tmp_path / "checkpoint.pt", resume)
    again = load_resume(tmp_path / "checkpoint.pt")
    assert torch.equal(again["torch_rng"], resume["torch_rng"]) and again["history"] == resume["history"]
    torch.optim.Adam(model.parameters(), lr=1e-3).load_state_dict(again["optimizer"])
    with pytest.raises(UserError, match="a training resume state .* pass the train stage's model.pt"):
        load_model(tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match="a trained model .*not a training resume state"):
        load_resume(tmp_path / "model.pt")
    with pytest.raises(ValueError):
        save_model(tmp_path / "partial.pt", {"model": {}})


def _cli(app, args: list[str], cwd: Path):
    return invoke_in(cwd, app, args)


def _one_error_line(result, path: Path) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith(f"error: {path}: not a grizal checkpoint: "), lines[0]
    return lines[0]


def test_crafted_model_to_the_evaluate_stage_and_localize_is_one_line(tiny_world, tmp_path):
    root, marker = tiny_world["root"], tmp_path / "payload-ran"
    evil = crafted(tmp_path / "evil.pt", marker, as_torch_file=True)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"localization": {}, "evaluate": {"tious": [0.5]}}))
    result = _cli(evaluate_app, ["--params", str(params), "--prepare", str(root / "prepare"), "--features",
                                str(tiny_world["features"]), "--model", str(evil), "--out", str(tmp_path / "ev")],
                  root)
    _one_error_line(result, evil)
    result = _cli(localize_app, ["localize", str(tiny_world["video"]), "-a", "circle rises", "--checkpoint",
                                 str(evil), "--cache-dir", str(tmp_path / "lc"), "--no-params"], root)
    _one_error_line(result, evil)
    assert not marker.exists()


def test_a_foreign_resume_checkpoint_is_reported_and_training_starts_afresh(tiny_world, tmp_path):
    marker = tmp_path / "payload-ran"
    out = tmp_path / "train"
    out.mkdir()
    crafted(out / "checkpoint.pt", marker, as_torch_file=True)
    messages: list[str] = []
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    model_path = train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {},
                       cfg, out, progress=False, log=messages.append)
    assert not marker.exists()
    assert any(m.startswith(f"{out / 'checkpoint.pt'}: not a grizal checkpoint: ") and m.endswith("starting afresh")
               for m in messages), messages
    assert load_resume(out / "checkpoint.pt")["epoch"] == 0  # replaced by this run's own state
    load_model(model_path)
