"""Training over the cached stores: seeded, resumable, DDP on two CPU processes; and the evaluate stage."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from pipeline.common import UserError
from pipeline.modelling.checkpoint import load_model, load_resume
from pipeline.modelling.fit import TrainConfig, epoch_pairs, linear_warmup_decay, train
from pipeline.modelling.inference import evaluate_model


def _train(world, out, epochs, **overrides):
    cfg = TrainConfig(epochs=epochs, batch_size=8, device="cpu", **overrides)
    return train(world["index"], world["split"], world["features"], world["model"], {}, cfg, out,
                 progress=False, log=lambda *_: None)


def _weights(path):
    return load_model(path)[1]["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [linear_warmup_decay(step, 100, 10) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False)) and lrs[-1] == pytest.approx(1 / 90)


def test_hard_negatives_are_absent_look_alike_classes_and_their_count_is_fixed():
    # 3 videos x 4 classes; class 0 looks like class 1 most, then 2; class 3 looks like nothing
    targets = torch.zeros(3, 4, 8)
    targets[0, 0, 2:5] = 1
    targets[1, 0, 1:3] = 1
    targets[1, 1, 5:7] = 1
    targets[2, 3, 0:4] = 1
    similarity = np.array([[1.0, 0.9, 0.5, -0.2], [0.9, 1.0, 0.4, -0.1], [0.5, 0.4, 1.0, 0.0],
                           [-0.2, -0.1, 0.0, 1.0]])
    counts = set()
    for seed in range(20):
        pairs = epoch_pairs(targets, 0.0, np.random.default_rng(seed), 1, similarity, pool=1)
        counts.add(len(pairs))
        hard = {tuple(p) for p in pairs.tolist()} - {(0, 0), (1, 0), (1, 1), (2, 3)}
        # video 0's class 0 -> class 1; video 1: class 0 -> 2 (1 is present), class 1 -> 2; video 2: 3 -> 2
        assert hard == {(0, 1), (1, 2), (2, 2)}
    assert counts == {4 + 4}
    plain = epoch_pairs(targets, 1.0, np.random.default_rng(0))
    present = targets.amax(-1) > 0
    assert len(plain) == 8 and int(present[plain[:, 0], plain[:, 1]].sum()) == 4


def test_train_config_rejects_negative_counts():
    with pytest.raises(UserError, match="hard_negatives"):
        TrainConfig.from_dict({"hard_negatives": -1})
    with pytest.raises(UserError, match="hard_negative_pool"):
        TrainConfig.from_dict({"hard_negative_pool": 0})


def test_seeded_training_is_reproducible_and_resumes_after_a_kill(tiny_world, tmp_path):
    full = _train(tiny_world, tmp_path / "full", 2)
    again = _train(tiny_world, tmp_path / "again", 2)
    assert _same(_weights(full), _weights(again))
    # A run killed during its second epoch leaves the first epoch's checkpoint.pt; the next run resumes from it.
    def kill_in_second_epoch(message):
        if message.startswith("epoch 2/2"):
            raise KeyboardInterrupt

    cfg = TrainConfig(epochs=2, batch_size=8, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {}, cfg,
              tmp_path / "killed", progress=False, log=kill_in_second_epoch)
    assert not (tmp_path / "killed" / "model.pt").exists()
    messages = []
    live = tmp_path / "live"
    resumed = train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {}, cfg,
                    tmp_path / "killed", progress=False, log=messages.append, live_dir=live)
    assert any("resuming" in m and "epoch 1" in m for m in messages)
    assert _same(_weights(full), _weights(resumed))
    state = load_model(resumed)[1]
    assert state["T"] == tiny_world["extract"]["T"] and set(state["encoders"]) == {"rgb", "flow", "priors"}
    # DVCLive's log of the resumed run holds both epochs, the one done before the kill included
    assert (live / "plots/metrics/loss/total.tsv").read_text().splitlines()[1:] == [
        f"{row['epoch']}\t{row['total']}" for row in load_resume(tmp_path / "killed" / "checkpoint.pt")["history"]]
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == 2 and {"total", "bce"} <= set(summary["loss"]) and "lr" in summary
    assert (live / "plots/metrics/lr.tsv").is_file() and not (live / "dvc.yaml").exists()


def test_the_resume_state_is_saved_after_the_first_and_last_epochs_and_at_most_every_resume_interval(
        tiny_world, tmp_path, monkeypatch):
    import pipeline.modelling.fit as fit

    saved = []
    real = fit.save_resume
    monkeypatch.setattr(fit, "save_resume", lambda path, state: (saved.append(state["epoch"]), real(path, state)))
    _train(tiny_world, tmp_path / "slow", 4)
    assert saved == [0, 3]  # this world's epochs take far less than RESUME_EVERY_S
    saved.clear()
    monkeypatch.setattr(fit, "RESUME_EVERY_S", 0.0)
    _train(tiny_world, tmp_path / "every", 4)
    assert saved == [0, 1, 2, 3]
    assert _same(_weights(tmp_path / "slow" / "model.pt"), _weights(tmp_path / "every" / "model.pt"))


def test_a_checkpoint_from_other_settings_is_not_resumed(tiny_world, tmp_path):
    _train(tiny_world, tmp_path, 1)
    messages = []
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", lr=5e-4)
    train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {}, cfg, tmp_path,
          progress=False, log=messages.append)
    assert any("other settings" in m for m in messages)


def test_a_checkpoint_trained_on_other_data_is_not_resumed(tiny_world, tmp_path, monkeypatch):
    """Remade priors (or re-extracted features) with unchanged settings retrain: the resume checkpoint is tied to
    the data it was trained on, not only to the settings."""
    from pipeline.features.inputs import FeatureSet

    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")
    _train(tiny_world, tmp_path, 1)
    messages = []
    train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {}, cfg, tmp_path,
          progress=False, log=messages.append)
    assert not any("afresh" in m for m in messages)  # the same data: the finished checkpoint is taken as it is
    real = FeatureSet.priors

    def remade(self, classes):
        priors = real(self, classes)
        priors.tensors["joint"] = priors.tensors["joint"] + 0.5
        return priors

    monkeypatch.setattr(FeatureSet, "priors", remade)
    messages.clear()
    train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {}, cfg, tmp_path,
          progress=False, log=messages.append)
    assert any("other settings or data: starting afresh" in m for m in messages)


def test_ddp_on_two_cpu_processes(tiny_world, tmp_path):
    root = tiny_world["root"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"model": tiny_world["model"], "loss": {},
                                      "train": {"epochs": 1, "batch_size": 4, "device": "cpu"}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "-m", "pipeline.train", "--params", str(params), "--prepare", str(root / "prepare"),
         "--features", str(tiny_world["features"]), "--out", str(tmp_path / "ddp"), "--live", str(tmp_path / "live"),
         "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("wrote ") == 1  # rank 0 alone writes
    assert (tmp_path / "ddp" / "model.pt").is_file()
    assert len((tmp_path / "live/plots/metrics/loss/total.tsv").read_text().splitlines()) == 2  # header + 1 epoch


def test_evaluate_stage_writes_predictions_metrics_and_plots(tiny_world, tmp_path):
    outcome = evaluate_model(tiny_world["index"], tiny_world["split"], tiny_world["features"],
                             tiny_world["checkpoint"], {}, [0.3, 0.5, 0.7], tmp_path, n_plots=2, device="cpu")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"grizal", "baseline_name_bg", "baseline_priors"} and metrics == outcome["metrics"]
    for report in metrics.values():
        assert set(report["mAP"]) == {"0.3", "0.5", "0.7"} and 0.0 <= report["average_mAP"] <= 1.0
    predictions = json.loads((tmp_path / "predictions.json").read_text())["results"]
    assert set(predictions) == set(tiny_world["split"].test_videos)
    assert all(r["label"] in tiny_world["split"].unseen for rows in predictions.values() for r in rows)
    assert list((tmp_path / "plots").glob("*.png")) and (tmp_path / "per_class.md").is_file()


def test_the_stage_doors_load_no_heavy_module():
    """`--help` of train and evaluate must not wait for torch, zarr or matplotlib (timed in benchmarks/)."""
    code = ("import sys, pipeline.train, pipeline.evaluate; "
            "print(sorted(m for m in ('torch', 'zarr', 'matplotlib', 'grizal.model', 'tqdm') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_unlabelled_test_videos_get_predictions_and_no_scores(tiny_world, tmp_path):
    """Inference on unlabelled videos (prepare.allow_empty): classes without ground truth are predicted, not
    scored; with none annotated, metrics say there is nothing to score instead of failing."""
    unannotated = tiny_world["split"].seen[0]  # not in the test video, which holds only the unseen class
    split = dataclasses.replace(tiny_world["split"], unseen=[unannotated])
    outcome = evaluate_model(tiny_world["index"], split, tiny_world["features"], tiny_world["checkpoint"], {},
                             [0.5], tmp_path / "none", n_plots=0, device="cpu")
    assert outcome["reports"] == {} and outcome["unscored"] == [unannotated]
    metrics = json.loads((tmp_path / "none" / "metrics.json").read_text())
    assert metrics["grizal"]["scored"] is False and "no ground truth" in metrics["grizal"]["reason"]
    predictions = json.loads((tmp_path / "none" / "predictions.json").read_text())["results"]
    assert set(predictions) == set(split.test_videos)
    assert {p["label"] for rows in predictions.values() for p in rows} <= {unannotated}

    both = dataclasses.replace(tiny_world["split"], unseen=[*tiny_world["split"].unseen, unannotated])
    mixed = evaluate_model(tiny_world["index"], both, tiny_world["features"], tiny_world["checkpoint"], {},
                           [0.5], tmp_path / "mixed", n_plots=0, device="cpu")
    assert mixed["metrics"]["grizal"]["unscored_classes"] == [unannotated]
    assert [row["class"] for row in mixed["reports"]["grizal"]["per_class"]] == tiny_world["split"].unseen
