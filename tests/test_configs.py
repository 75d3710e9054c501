"""Every shipped params file (the demo default and the paper's settings under configs/) is valid for every stage."""

from pathlib import Path

import pytest
import yaml

from grizal.localization import localization_config
from grizal.losses import loss_config
from grizal.model import ModelConfig
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
    assert all(0 < t < 1 for t in params["evaluate"]["tious"])
    if params["prepare"]["dataset"] in ("thumos14", "activitynet"):
        assert str(params["prepare"]["split_setting"]) in ("75_25", "50_50")
