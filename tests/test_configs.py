"""Every shipped params file (the demo default and the paper's settings under configs/) is valid for every stage."""

from pathlib import Path

import pytest
import yaml

from grizal.localization import localization_config
from grizal.losses import loss_config
from grizal.model import ModelConfig
from pipeline.evaluate import parse_tious, thresholds_from_params
from pipeline.extract_config import extract_config
from pipeline.priors.config import build_config
from pipeline.results import VARIANTS
from pipeline.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PARAMS = [ROOT / "params.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_params_file_is_valid_for_every_stage(path):
    params = yaml.safe_load(path.read_text())
    assert {"demo", "prepare", "generate", "extract", "model", "loss", "train", "localization", "evaluate",
            "results"} <= set(params)
    build_config(params["generate"], path)
    extract_config(params, str(path))
    ModelConfig.from_dict(params["model"])
    loss_config(params["loss"])
    TrainConfig.from_dict(params["train"], str(path))
    localization_config(params["localization"])
    assert set(params["results"]["variants"]) <= set(VARIANTS)
    thresholds = thresholds_from_params(params["evaluate"], path)
    assert all(0 < t < 1 for t in thresholds.scored)
    if params["prepare"]["dataset"] in ("thumos14", "activitynet"):
        assert str(params["prepare"]["split_setting"]) in ("75_25", "50_50")


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_params_file_averages_its_protocols_thresholds(path):
    """ActivityNet: avg mAP over 0.5:0.05:0.95, columns 0.5/0.75/0.95; THUMOS14, demo: 0.3:0.1:0.7 both."""
    params = yaml.safe_load(path.read_text())
    thresholds = thresholds_from_params(params["evaluate"], path)
    if params["prepare"]["dataset"] == "activitynet":
        assert list(thresholds.averaged) == parse_tious("0.5:0.05:0.95")
        assert thresholds.reported == (0.5, 0.75, 0.95)
    elif params["prepare"]["dataset"] in ("thumos14", "demo"):
        assert list(thresholds.averaged) == list(thresholds.reported) == parse_tious("0.3:0.1:0.7")
