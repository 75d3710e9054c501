"""The params schema: every bad value of every section is one line naming the file, the key, the value and what
is expected; every params file the project ships validates unchanged; the schema's defaults are the code's."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, get_args

import pytest
from support.paper_settings import SETTINGS
from support.params_edit import DELETE, set_dotted

from pipeline.common import UserError, load_params
from pipeline.config import compose_params
from pipeline.params_schema import SCHEMAS, show, validate_params, validate_section

ROOT = Path(__file__).resolve().parents[1]
WHERE = "mine/bad.yaml"  # stands for the file passed with --params: errors must name it, not params.yaml


@dataclasses.dataclass
class Case:
    path: str  # the dotted key to set (or delete)
    value: Any
    expect: str  # what the message says is expected
    key: str | None = None  # the dotted key the message names, when not `path`
    got: Any = dataclasses.field(default=DELETE)  # the value the message shows, when not `value`
    base: str = "params.yaml"  # or the overrides of a composed setting (conf/), e.g. "dataset=charades"

    def __str__(self) -> str:
        return f"{self.path}={show(self.value) if self.value is not DELETE else '<deleted>'}"


def C(path, value, expect, key=None, got=DELETE, base="params.yaml"):  # noqa: N802 - a table row
    return Case(path, value, expect, key, got, base)


CASES = [
    # demo (DemoConfig; the demo world's geometry and the mp4 encoder)
    C("demo.fps", 0, "expected an integer >= 1"),
    C("demo.fps", 12.5, "expected an integer >= 1"),
    C("demo.fps", True, "expected an integer >= 1"),
    C("demo.size", 64, "expected an even integer >= 110"),
    C("demo.size", 111, "expected an even integer >= 110"),
    C("demo.size", "big", "expected an even integer >= 110"),
    C("demo.videos_per_class_train", -1, "expected an integer >= 1"),
    C("demo.videos_per_class_test", 1.5, "expected an integer >= 1"),
    C("demo.seed", -3, "expected an integer >= 0"),
    C("demo.second_class_prob", 1.5, "expected a number in [0, 1]"),
    C("demo.min_duration", 2, "expected a number >= 6"),
    C("demo.max_duration", 20, "expected a number >= demo.min_duration (24)"),
    C("demo.vidoes_per_class_train", 2, "unknown key (did you mean 'videos_per_class_train'?)"),
    C("demo.colour", "red", "unknown key (known: seed, videos_per_class_train"),
    # pretrain (PretrainConfig, CorpusConfig)
    C("pretrain.steps", 0, "expected an integer >= 1"),
    C("pretrain.batch_size", 1, "expected an integer >= 2"),
    C("pretrain.lr", 0, "expected a number > 0"),
    C("pretrain.max_radius", 5.0, "expected a number >= pretrain.min_radius (7)"),
    C("pretrain.distractor_counts", [0.5, 0.6], "expected probabilities of 0, 1, 2, ... distractors that sum to 1"),
    C("pretrain.trail_prob", 2, "expected a number in [0, 1]"),
    C("pretrain.stils", 3, "unknown key (did you mean 'n_stills'?)"),
    # prepare (its data set's keys)
    C("prepare.split_id", "zero", "expected an integer >= 0"),
    C("prepare.split_id", -1, "expected an integer >= 0"),
    C("prepare.split_setting", 7030, "expected one of 75_25, 50_50, got 7030 (quote it: YAML reads an unquoted "
                                     "75_25 as the number 7525)"),
    C("prepare.split_setting", "75-25", "expected one of 75_25, 50_50, got '75-25' (did you mean '75_25'?)"),
    C("prepare.dataset", "thumos", "expected one of demo, thumos14, activitynet, charades, custom, got 'thumos' "
                                   "(did you mean 'thumos14'?)"),
    C("prepare.dataset", DELETE, "missing (expected one of demo, thumos14"),
    C("prepare.protocol", "opn", "expected one of open, closed, got 'opn' (did you mean 'open'?)"),
    C("prepare.allow_empty", "yes", "expected true or false, got 'yes' (quoted: remove the quotes)"),
    C("prepare.sta_train", "sta.txt", "not read for dataset 'demo' (only for charades)"),
    C("prepare.video_info", "info.csv", "not read for dataset 'demo' (only for activitynet)"),
    C("prepare.annotations", DELETE, "missing (expected a path, required for dataset 'demo')"),
    C("prepare.annotations", 5, "expected a path"),
    C("prepare.video_dir", 3, "expected a path or null"),
    C("prepare.unseen_lst", "unseen.txt", "unknown key (did you mean 'unseen_list'?)"),
    C("prepare.protocol", ["open"], "expected one of open, closed, got ['open']"),  # a list is no choice
    C("prepare.split_setting", {"a": 1}, "expected one of 75_25, 50_50, got {'a': 1} (quote it"),
    C("prepare.seen_list", "seen.txt", "only read together with prepare.unseen_list"),
    C("prepare.sta_test", DELETE, "missing (expected a path, required for dataset 'charades')",
      base="dataset=charades"),
    C("prepare.charades_csv", "train.csv", "expected a non-empty list of paths", base="dataset=charades"),
    C("prepare.charades_csv", [], "expected a non-empty list of paths", base="dataset=charades"),
    C("prepare.annotations", "/elsewhere", "expected a file inside prepare.annotations", key="prepare.sta_train",
      got="/data/charades/annotations/charades_sta_train.txt", base="dataset=charades"),
    C("prepare.annotations", DELETE, "missing (expected a path, required for dataset 'charades')",
      base="dataset=charades"),
    C("prepare.split_setting", "70_30", "expected one of 75_25, 50_50",
      base="dataset=thumos14"),
    # generate (GenerateConfig)
    C("generate.k", 0, "expected an integer >= 1"),
    C("generate.k", "four", "expected an integer >= 1"),
    C("generate.text_backend", "opanai", "expected one of offline, openai, hf, got 'opanai' (did you mean 'openai'?)"),
    C("generate.image_backend", False, "(YAML reads unquoted yes/no/on/off/true/false as a boolean: quote it)"),
    C("generate.image_size", 5000, "expected an integer in [1, 4096]"),
    C("generate.timeout_s", 0, "expected a number > 0"),
    C("generate.min_words", 80, "expected an integer <= generate.max_words (60)"),
    C("generate.image_backend", "openworld", "expected a path (a folder with one folder per class) for "
                                             "image_backend 'openworld'", key="generate.openworld_dir", got=None),
    C("generate.image_prompt", "{action} in {colour}", "expected a template with placeholders {action}, "
                                                      "{sentence}, not {colour}"),
    C("generate.text_prompt", "Describe {action", "expected a template with placeholders {action}, {k}, {words}"),
    C("generate.hf_top_p", 1.5, "expected a number in (0, 1]"),
    C("generate.backoff_s", -1, "expected a number >= 0"),
    C("generate.openai_image_size", "big", "expected a size WIDTHxHEIGHT (e.g. 1024x1024) or auto"),
    C("generate.diffusion_resolution", 100, "expected a multiple of 8 >= 8 or null"),
    C("generate.device", "gpu", "expected a device: auto, cpu, cuda, cuda:N or mps"),
    C("generate.concurency", 4, "unknown key (did you mean 'concurrency'?)"),
    C("generate.max_retries", 2.5, "expected an integer >= 0"),
    # extract (extract_config and the encoders' specs)
    C("extract.clip.modle", "ViT-B-32", "unknown key (did you mean 'model'?)"),
    C("extract.T", 0, "expected an integer >= 1"),
    C("extract.T", 128.0, "expected an integer >= 1, got 128.0 (write 128, without the decimal point)"),
    C("extract.max_failure_fraction", 1.5, "expected a number in [0, 1]"),
    C("extract.queue_size", "big", "expected an integer >= 1"),
    C("extract.decode_workers", 0, "expected an integer >= 1"),
    C("extract.queue_sise", 64, "unknown key (did you mean 'queue_size'?)"),
    C("extract.device", "cuda:x", "expected a device: auto, cpu, cuda, cuda:N or mps"),
    C("extract.out", "cache", "expected a mapping of settings"),
    C("extract.out.rgb", 3, "expected a path"),
    C("extract.out.rbg", "x.zarr", "unknown key (did you mean 'rgb'?)"),
    C("extract.clip.precision", "fp64", "expected one of auto, fp32, bf16, fp16"),
    C("extract.clip.batch_size", 0, "expected an integer >= 1"),
    C("extract.clip.model", "", "expected an open_clip model name"),
    C("extract.frames.sample_fps", 0, "expected a number >= 0.001 or null"),
    C("extract.frames.min_frames", 1, "expected an integer >= 2"),
    C("extract.flow.method", "farnback", "expected one of farneback, dis, raft_small, raft_large, got "
                                         "'farnback' (did you mean 'farneback'?)"),
    C("extract.flow.max_side", 4, "expected an integer >= 8 or null"),
    C("extract.flow.autocast", "fp32", "expected one of auto, bf16, fp16, none"),
    C("extract.flow.dis_preset", "slow", "expected one of ultrafast, fast, medium"),
    C("extract.flow.wheel_max_magnitude", 0, "expected a number > 0 or null"),
    C("extract.flow.num_flow_updates", 0, "expected an integer >= 1"),
    C("extract.flow.farneback", {"levls": 3}, "unknown key (did you mean 'levels'?)",
      key="extract.flow.farneback.levls", got=3),
    C("extract.flow.farneback", {"pyr_scale": 1.0}, "expected a number in (0, 1)",
      key="extract.flow.farneback.pyr_scale", got=1.0),
    C("extract.flow.farneback", [5], "expected a mapping of settings or null"),
    C("extract.priors.name_template", "a video of {action}", "expected a template where {}, {name} or {class} "
                                                             "stands for the class name"),
    # model (ModelConfig)
    C("model.k", 0, "expected an integer >= 1"),
    C("model.k", "4", "expected an integer >= 1, got '4' (a quoted number: remove the quotes)"),
    C("model.width", 130, "expected a multiple of model.heads (4)"),
    C("model.heads", 0, "expected an integer >= 1"),
    C("model.dropout", 1.0, "expected a number in [0, 1)"),
    C("model.mlp_ratio", 0, "expected a number > 0"),
    C("model.ft_layers", 0, "expected an integer >= 1"),
    C("model.vle_layers", -1, "expected an integer >= 0"),
    C("model.use_flow", "yes", "expected true or false"),
    C("model.use_flow", 1, "expected true or false"),
    C("model.widht", 64, "unknown key (did you mean 'width'?)"),
    # loss (loss_config)
    C("loss.bce", -1, "expected a number >= 0"),
    C("loss.temperature", 0, "expected a number > 0"),
    C("loss.objective", "supervise", "expected one of all, supervised, self_supervised, got 'supervise' "
                                          "(did you mean 'supervised'?)"),
    C("loss.infonce", "half", "expected a number >= 0"),
    C("loss.tiou_smooth", True, "expected a number >= 0"),
    C("loss.bc", 1.0, "unknown key (did you mean 'bce'?)"),
    # train (TrainConfig, Adam)
    C("train.epochs", "ten", "expected an integer >= 1"),
    C("train.epochs", 0, "expected an integer >= 1"),
    C("train.batch_size", 2.5, "expected an integer >= 1"),
    C("train.betas", [0.9], "expected a list of 2 numbers in [0, 1)"),
    C("train.betas", [0.9, 1.5], "expected a number in [0, 1)", key="train.betas[1]", got=1.5),
    C("train.betas", 0.9, "expected a list of 2 numbers in [0, 1)"),
    C("train.warmup_fraction", 2, "expected a number in [0, 1]"),
    C("train.lr", 0, "expected a number > 0"),
    C("train.lr", "1e-4", "expected a number > 0, got '1e-4' (YAML reads 1e-4 as text: write 1.0e-4)"),
    C("train.eps", -1, "expected a number >= 0"),
    C("train.weight_decay", -0.1, "expected a number >= 0"),
    C("train.hard_negatives", -1, "expected an integer >= 0"),
    C("train.hard_negative_pool", 0, "expected an integer >= 1"),
    C("train.negatives_per_positive", -1, "expected a number >= 0"),
    C("train.seed", -1, "expected an integer in [0, 4294967295]"),
    C("train.grad_clip", -1, "expected a number >= 0 or null"),
    C("train.device", "gpu", "expected a device: auto, cpu, cuda, cuda:N or mps"),
    C("train.epoch", 3, "unknown key (did you mean 'epochs'?)"),
    # localization (localization_config)
    C("localization.thresholds", [], "expected a non-empty list of numbers in (0, 1)"),
    C("localization.thresholds", [0, 0.5], "expected a number in (0, 1)", key="localization.thresholds[0]", got=0),
    C("localization.thresholds", [1.0], "expected a number in (0, 1)", key="localization.thresholds[0]", got=1.0),
    C("localization.thresholds", "0.5", "expected a non-empty list of numbers in (0, 1)"),
    C("localization.nms", "soft-nms", "expected one of soft, hard, none, got 'soft-nms' (did you mean 'soft'?)"),
    C("localization.score", "avg", "expected one of mean, contrast, max"),
    C("localization.nms_iou", 1.5, "expected a number in [0, 1]"),
    C("localization.nms_sigma", 0, "expected a number > 0"),
    C("localization.max_segments", 0, "expected an integer >= 1"),
    C("localization.max_segments", 10.5, "expected an integer >= 1"),
    C("localization.min_score", -1, "expected a number >= 0"),
    C("localization.merge_gap", math.nan, "expected a number >= 0"),
    C("localization.cross_class", "geometrc", "expected one of none, geometric, got 'geometrc' "
                                              "(did you mean 'geometric'?)"),
    C("localization.treshold", [0.5], "unknown key (did you mean 'thresholds'?)"),
    # evaluate
    C("evaluate.tious", [], "expected a non-empty list of numbers in (0, 1] without repeats"),
    C("evaluate.tious", [0], "expected a number in (0, 1]", key="evaluate.tious[0]", got=0),
    C("evaluate.tious", [0.5, 1.5], "expected a number in (0, 1]", key="evaluate.tious[1]", got=1.5),
    C("evaluate.tious", [0.5, 0.5], "without repeats, got [0.5, 0.5] (0.5 is repeated)"),
    C("evaluate.tious", 0.5, "expected a non-empty list of numbers in (0, 1] without repeats"),
    C("evaluate.tious", DELETE, "missing (expected a non-empty list of numbers in (0, 1] without repeats)"),
    C("evaluate.report_tious", [], "expected a non-empty list of numbers in (0, 1] without repeats or null"),
    C("evaluate.n_plots", -1, "expected an integer >= 0"),
    C("evaluate.device", 3, "expected a device: auto, cpu, cuda, cuda:N or mps"),
    C("evaluate.nplots", 2, "unknown key (did you mean 'n_plots'?)"),
    # results
    C("results.workers", 0, "expected an integer >= 1"),
    C("results.workers", True, "expected an integer >= 1"),
    C("results.variants", ["GRIZAL", "w/o colour"], "expected one of GRIZAL, w/o images",
      key="results.variants[1]", got="w/o colour"),
    C("results.variants", [], "expected a non-empty list of items, each one of GRIZAL"),
    C("results.variants", DELETE, "missing (expected a non-empty list of items, each one of GRIZAL"),
    C("results.splits", [0, "one"], "expected an integer >= 0", key="results.splits[1]", got="one"),
    C("results.splits", [-1], "expected an integer >= 0", key="results.splits[0]", got=-1),
    C("results.splits", [0, 0], "expected a list of integers >= 0 without repeats"),
    C("results.splits", DELETE, "missing (expected a list of integers >= 0 without repeats; prepare.protocol is open)"),
    C("results.closed_set", "no", "expected true or false, got 'no' (quoted: remove the quotes)"),
    C("results.worker", 2, "unknown key (did you mean 'workers'?)"),
]


_LOADED: dict[str, dict[str, Any]] = {}


def _params(name: str) -> dict[str, Any]:
    if name not in _LOADED:
        _LOADED[name] = compose_params(name.split(), ROOT / "conf") if "=" in name else load_params(ROOT / name)
    return copy.deepcopy(_LOADED[name])


def test_the_table_covers_every_section():
    assert {case.path.split(".")[0] for case in CASES} == set(SCHEMAS)
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_value_is_one_line_naming_the_file_key_value_and_expectation(case: Case):
    params = _params(case.base)
    set_dotted(params, case.path, case.value)
    section = case.path.split(".")[0]
    with pytest.raises(UserError) as err:
        validate_section(params, section, WHERE)
    message = f"error: {err.value}"
    key = case.key or case.path
    got = case.value if case.got is DELETE else case.got
    assert "\n" not in message
    assert message.startswith(f"error: {WHERE}: {key}: "), message
    assert case.expect in message, message
    if case.value is not DELETE and "unknown key" not in case.expect and "missing" not in case.expect:
        assert f"got {show(got)}" in message, message


@pytest.mark.parametrize("name", [n for n in SCHEMAS if n != "loss"])
def test_a_missing_section_is_named(name):
    params = _params("params.yaml")
    del params[name]
    # a section whose name is close to another's gets that one suggested (pretrain: did you mean 'prepare'?)
    with pytest.raises(UserError, match=rf"^{WHERE}: missing section '{name}'( \(did you mean '\w+'\?\))?$"):
        validate_section(params, name, WHERE)


def test_a_misspelt_section_is_suggested():
    params = _params("params.yaml")
    params["trian"] = params.pop("train")
    with pytest.raises(UserError, match=r"missing section 'train' \(did you mean 'trian'\?\)"):
        validate_params(params, ["train"], WHERE)


def test_a_section_that_is_not_a_mapping_is_named():
    params = _params("params.yaml")
    params["train"] = [1, 2]
    with pytest.raises(UserError, match=rf"^{WHERE}: train: expected a mapping of settings, got \[1, 2\]$"):
        validate_section(params, "train", WHERE)


def test_a_missing_or_empty_loss_section_means_its_defaults():
    params = _params("params.yaml")
    expected = validate_section({"loss": {}}, "loss", WHERE)
    params["loss"] = None
    assert validate_section(params, "loss", WHERE) == expected
    del params["loss"]
    assert validate_section(params, "loss", WHERE) == expected


@pytest.mark.parametrize("name", ["params.yaml", *(" ".join(o) for o in SETTINGS.values())])
def test_every_shipped_params_file_validates_unchanged(name):
    params = _params(name)
    checked = validate_params(params, SCHEMAS, name)
    as_given = validate_params(params, SCHEMAS, name, fill_defaults=False)
    for section in SCHEMAS:
        given = params.get(section) or {}
        assert as_given[section] == given
        assert {k: v for k, v in checked[section].items() if k in given} == given


def test_yaml_quirks_in_a_real_file(tmp_path):
    """An unquoted 75_25 is the integer 7525 (accepted, as prepare always has); 1e-4 without a dot is text."""
    text = (ROOT / "params.yaml").read_text()
    path = tmp_path / "mine.yaml"
    assert "split_setting: '75_25'" in text
    path.write_text(text.replace("split_setting: '75_25'", "split_setting: 75_25"))
    params = load_params(path)
    assert params["prepare"]["split_setting"] == 7525
    assert validate_section(params, "prepare", path)["split_setting"] == "75_25"
    assert "  lr: 0.0015\n" in text
    path.write_text(text.replace("  lr: 0.0015\n", "  lr: 1e-3\n"))
    with pytest.raises(UserError) as err:
        validate_section(load_params(path), "train", path)
    assert str(err.value) == (f"{path}: train.lr: expected a number > 0, got '1e-3' "
                              "(YAML reads 1e-3 as text: write 1.0e-3)")


def test_defaults_fill_only_what_is_missing():
    params = {"train": {"epochs": 3}, "extract": {"clip": {"batch_size": 8}, "flow": {"farneback": {"levels": 2}}}}
    train = validate_section(params, "train", WHERE)
    assert train["epochs"] == 3 and train["batch_size"] == 32
    extract = validate_section(params, "extract", WHERE)
    assert extract["clip"]["batch_size"] == 8 and extract["clip"]["model"] == "ViT-B-32-quickgelu"
    assert extract["flow"]["farneback"] == {"levels": 2}  # OpenCV's defaults fill the rest, as before
    assert list(validate_section(params, "train", WHERE, fill_defaults=False)) == ["epochs"]


# --- the stages' configs are the models; the copies grizal keeps (it imports no pipeline) match them -----------

def _without(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in names}


def test_the_stage_configs_are_the_models():
    from pipeline.data.demo import DemoConfig
    from pipeline.features.settings import DEFAULTS
    from pipeline.modelling.fit import TrainConfig
    from pipeline.params_schema import DemoWorld, TrainParams

    assert issubclass(TrainConfig, TrainParams) and issubclass(DemoConfig, DemoWorld)
    assert validate_section({"train": {}}, "train", WHERE) == TrainConfig().to_dict()
    assert validate_section({"demo": {}}, "demo", WHERE) == DemoConfig().model_dump()
    assert validate_section({"extract": {}}, "extract", WHERE) == DEFAULTS
    assert TrainConfig.from_dict({"epochs": 2}).epochs == 2
    with pytest.raises(UserError, match=r"^x.yaml: train.epochs: expected an integer >= 1, got 0$"):
        TrainConfig.from_dict({"epochs": 0}, "x.yaml")


def test_defaults_match_the_dataclasses_that_stay():
    from grizal.model.config import ModelConfig
    from pipeline.params_schema import GenerateParams
    from pipeline.priors.config import GenerateConfig

    model = _without(ModelConfig().to_dict(), "rgb_dim", "flow_dim", "prior_dim")
    assert validate_section({"model": {}}, "model", WHERE) == model
    assert issubclass(GenerateConfig, GenerateParams)
    generate = validate_section({"generate": {}}, "generate", WHERE)
    assert generate == {k: str(v) if isinstance(v, Path) else v for k, v in GenerateConfig().model_dump().items()}


def test_defaults_match_the_config_functions():
    from grizal.localization import LOCALIZATION_DEFAULTS, localization_config
    from grizal.losses import LOSS_DEFAULTS, loss_config

    assert validate_section({"loss": {}}, "loss", WHERE) == loss_config({}) == LOSS_DEFAULTS
    assert validate_section({"localization": {}}, "localization", WHERE) == localization_config({}) \
        == LOCALIZATION_DEFAULTS


def _choices(model, name):
    annotation = model.model_fields[name].annotation
    return set(get_args(annotation))


def test_choices_match_the_code():
    from grizal.encoders.flow import AUTOCAST_DTYPES, DIS_PRESETS, FARNEBACK_DEFAULTS, FLOW_METHODS
    from grizal.encoders.priors import JOINT_UNITS
    from grizal.precision import PRECISIONS
    from pipeline import params_schema as schema
    from pipeline.data.build import DATASETS
    from pipeline.features.settings import FRAME_FAMILIES
    from pipeline.modelling.grid import VARIANTS
    from pipeline.priors.config import IMAGE_BACKENDS, TEXT_BACKENDS

    assert _choices(schema.FlowParams, "method") == set(FLOW_METHODS)
    assert _choices(schema.FlowParams, "autocast") == set(AUTOCAST_DTYPES)
    assert _choices(schema.FlowParams, "dis_preset") == set(DIS_PRESETS)
    assert set(schema.FarnebackParams.model_fields) == set(FARNEBACK_DEFAULTS)
    assert _choices(schema.ClipParams, "precision") == set(PRECISIONS)
    assert _choices(schema.ExtractPriorsParams, "joint_unit") == set(JOINT_UNITS)
    assert _choices(schema.FrameEncoderParams, "family") == set(FRAME_FAMILIES)
    assert schema.DATASETS == DATASETS
    assert (schema.TEXT_BACKENDS, schema.IMAGE_BACKENDS) == (TEXT_BACKENDS, IMAGE_BACKENDS)
    assert tuple(VARIANTS) == schema.VARIANTS


def test_a_huge_value_is_shown_short():
    """A long list or a deeply shared one (what a YAML alias bomb loads as) is named by a short prefix."""
    params = _params("params.yaml")
    level = [0] * 10
    for _ in range(8):  # 10**8 leaves when walked
        level = [level] * 10
    for path, value in (("train.betas", list(range(10**6))), ("train.epochs", level), ("train.device", "x" * 10**6)):
        set_dotted(params, path, value)
        with pytest.raises(UserError) as err:
            validate_section(params, "train", WHERE)
        set_dotted(params, path, _params("params.yaml")["train"][path.split(".")[1]])
        assert len(str(err.value)) < 250 and "..." in str(err.value)
