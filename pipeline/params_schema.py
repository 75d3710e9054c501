"""The params sections as pydantic models: keys, types, defaults, ranges and choices written once, checked at each
stage's door.

``validate_section(params, "train", where)`` checks the ``train`` section of a loaded params file and returns it
with the defaults filled in. The first problem found is a ``UserError`` of one line naming the file passed, the
dotted key, the value and what is expected (the text comes from the section's JSON Schema, the same one editors
read: ``python -m pipeline.json_schema``)::

    error: mine.yaml: train.epochs: expected an integer >= 1, got 'ten'
    error: mine.yaml: extract.clip.modle: unknown key (did you mean 'model'?)
    error: mine.yaml: missing section 'train'

What needs data only a running stage has stays with that stage: ``model.k`` against the prior pairs in the store, a
device being present, files existing, split ids against the published split lists.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.common import UserError


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, on one line and short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    import reprlib

    from pipeline.common import expanded_size

    try:  # bounded: a huge (e.g. alias-expanded) or self-containing value is never repr'd whole
        small = expanded_size(value) <= 1000
    except (ValueError, RecursionError):
        small = False
    if small:
        text = repr(value)
    else:
        short = reprlib.Repr()
        short.maxlevel, short.maxdict, short.maxlist, short.maxtuple = 4, 12, 12, 12
        short.maxstring, short.maxother, short.maxlong = 120, 120, 120
        text = short.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_MAX_ITEMS, _MAX_CHARS = 1000, 10_000


def _bounded(value: Any, budget: list[int] | None = None) -> Any:
    """A prefix of ``value`` big enough for ``show`` to write the same short text, without walking all of a huge
    value (a long list, a YAML alias bomb): at most _MAX_ITEMS items in all, strings cut at _MAX_CHARS."""
    budget = [_MAX_ITEMS] if budget is None else budget
    if isinstance(value, str):
        return value[:_MAX_CHARS]
    if isinstance(value, list | tuple | dict):
        items = value.items() if isinstance(value, dict) else value
        kept = []
        for item in items:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            kept.append((item[0], _bounded(item[1], budget)) if isinstance(value, dict) else _bounded(item, budget))
        return dict(kept) if isinstance(value, dict) else kept
    return value


def _shown(value: Any) -> str:
    return show(_bounded(value))


def _show_as_written(value: Any) -> str:
    """``show`` of a checked value: a path as the string it was written as."""
    if isinstance(value, list):
        value = [str(v) if isinstance(v, Path) else v for v in value]
    return show(str(value) if isinstance(value, Path) else value)


def _closest(word: Any, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


def _problem(key: str, problem: str) -> PydanticCustomError:
    """A rule across keys broken: ``key`` (below the section) and the whole message after it."""
    return PydanticCustomError("params_rule", "{problem}", {"key": key, "problem": problem})


# --- the kinds of value, as pydantic types --------------------------------------------------------------------


def _keep_int(value: Any, handler: Callable[[Any], Any]) -> Any:
    out = handler(value)
    return value if type(value) is int else out  # 1 stays 1: the hashed sections (model, loss) hash what was written


def Int(**limits: Any) -> Any:  # noqa: N802 - a type
    """An integer (never a boolean or a float); ``limits`` are pydantic's ge, le, multiple_of."""
    return Annotated[StrictInt, Field(**limits)]


def Number(**limits: Any) -> Any:  # noqa: N802 - a type
    """A finite int or float (an int stays an int; a boolean is never a number); ``limits``: ge, gt, le, lt."""
    return Annotated[float, Field(strict=True, allow_inf_nan=False, **limits), WrapValidator(_keep_int)]


def Text(expected: str = "a string", nonempty: bool = False, pattern: str | None = None,
         rule: Callable[[str], str | None] | None = None) -> Any:  # noqa: N802 - a type
    """A string described as ``expected``; ``rule`` returns what is wrong with the text (or None)."""
    def check(value: str) -> str:
        problem = rule(value) if rule else None
        if problem:
            raise PydanticCustomError("params_text", "{problem}", {"problem": problem})
        return value

    limits = {"pattern": pattern or (r"\S" if nonempty else None)}
    return Annotated[StrictStr, Field(description=expected, **{k: v for k, v in limits.items() if v}),
                     AfterValidator(check)]


def _path_text(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _to_path(value: str) -> Path:
    return Path(value)


# A path: written as a string, a Path in the model (section dicts keep the string as written).
PATH = Annotated[Text("a path", nonempty=True), BeforeValidator(_path_text), AfterValidator(_to_path),
                 PlainSerializer(str, return_type=str)]
DEVICE = Text("a device: auto, cpu, cuda, cuda:N or mps", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _unique(key: Callable[[Any], Any]) -> Callable[[list], list]:
    def check(items: list) -> list:
        seen = set()
        for item in items:
            if key(item) in seen:
                raise PydanticCustomError("params_repeated", "repeated", {"repeated": item})
            seen.add(key(item))
        return items
    return check


def ListOf(item: Any, min_length: int = 0, max_length: int | None = None,  # noqa: N802 - a type
           unique: Callable[[Any], Any] | None = None, scalar_ok: bool = False) -> Any:
    """A list of ``item``; ``unique``: items must differ by this key; ``scalar_ok``: one item stands for a list."""
    def length_first(value: Any) -> Any:  # a list of the wrong length is named as a whole, before its items
        if isinstance(value, list | tuple) and not min_length <= len(value) <= (max_length or len(value)):
            raise PydanticCustomError("params_length", "wrong length", {})
        return value

    extra: list[Any] = [AfterValidator(_unique(unique))] if unique else []
    extra.append(BeforeValidator(length_first))
    if scalar_ok:  # runs first: the outermost before-validator
        extra.append(BeforeValidator(lambda v: v if isinstance(v, list | tuple | dict | str | type(None)) else [v]))
    return Annotated[list[item], Field(min_length=min_length, max_length=max_length,
                                       json_schema_extra={"uniqueItems": True} if unique else None), *extra]


class Section(BaseModel):
    """A params section or a part of one: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


NO_DEFAULT = "x-no-default"  # marks a key that is left out when absent (json_schema() drops it and its null default)


def Optional() -> Any:  # noqa: N802 - a field
    """An optional key with nothing filled in when it is absent (validate_section leaves it out)."""
    return Field(default=None, json_schema_extra={NO_DEFAULT: True})


def _has_no_default(field: Any) -> bool:
    return isinstance(field.json_schema_extra, dict) and NO_DEFAULT in field.json_schema_extra


# --- demo (pipeline/data/demo.py DemoConfig) ---------------------------------


class DemoWorld(Section):
    """The demo world's settings (pipeline/data/demo.py DemoConfig is this model)."""

    seed: Int(ge=0) = 0
    videos_per_class_train: Int(ge=1) = 3
    videos_per_class_test: Int(ge=1) = 3
    # A moving actor's path (up to 0.55 of the frame) plus its margins must fit: size > 108.4; libx264 needs
    # an even size.
    size: Int(ge=110, multiple_of=2) = 128
    fps: Int(ge=1) = 10  # the mp4 stream's rate is a whole number of frames per second
    # Each video holds at least one action of >= 0.5 s between 1.5 s background gaps and 1 s edges.
    min_duration: Number(ge=6) = 24.0
    max_duration: Number(ge=6) = 36.0
    second_class_prob: Number(ge=0, le=1) = 0.35

    @model_validator(mode="after")
    def _durations(self) -> DemoWorld:
        if self.max_duration < self.min_duration:
            raise _problem("max_duration", f"expected a number >= demo.min_duration ({self.min_duration:g}), "
                                           f"got {_shown(self.max_duration)}")
        return self


class DemoParams(DemoWorld):
    out: PATH = Optional()  # read and ignored: the stage's --out option names the folder


# --- pretrain (pipeline/pretraining/loop.py PretrainConfig, corpus.py CorpusConfig) --------------------------


class PretrainParams(Section):
    seed: Int(ge=0, le=2**32 - 1) = 0
    steps: Int(ge=1) = 1500
    batch_size: Int(ge=2) = 64  # contrastive: each caption needs other stills as negatives
    lr: Number(gt=0) = 1e-3
    warmup: Int(ge=0) = 50
    weight_decay: Number(ge=0) = 0.1
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # autocast; auto: fp32 on the CPU
    n_stills: Int(ge=2) = 30000
    min_radius: Number(ge=2, le=40) = 7.0  # px at the demo world's 128 px frame
    max_radius: Number(ge=2, le=40) = 14.0
    distractor_counts: ListOf(Number(ge=0, le=1), min_length=1) = [0.0, 0.5, 0.5]
    trail_prob: Number(ge=0, le=1) = 0.5
    long_caption_prob: Number(ge=0, le=1) = 0.3
    eval_stills: Int(ge=1) = 480

    @model_validator(mode="after")
    def _rules(self) -> PretrainParams:
        if self.max_radius < self.min_radius:
            raise _problem("max_radius", f"expected a number >= pretrain.min_radius ({self.min_radius:g}), "
                                         f"got {_shown(self.max_radius)}")
        counts = self.distractor_counts
        if not math.isclose(sum(counts), 1.0, abs_tol=1e-6):
            raise _problem("distractor_counts", "expected probabilities of 0, 1, 2, ... distractors that sum to 1, "
                                                f"got {_shown(counts)} (sum {sum(counts):g})")
        return self


# --- prepare (pipeline/data/build.py) -----------------------------------------------------------------------

DATASETS = ("demo", "thumos14", "activitynet", "charades", "custom")
# Keys only some data sets read; every other key of the section is read for all of them.
DATASET_KEYS = {
    "annotations": DATASETS,  # dvc.yaml's prepare dep: every data set names its annotation file or folder
    "video_info": ("activitynet",),
    "sta_train": ("charades",),
    "sta_test": ("charades",),
    "charades_csv": ("charades",),
}
REQUIRED_BY_DATASET = {
    "demo": ("annotations",),
    "thumos14": ("annotations",),
    "activitynet": ("annotations",),
    "custom": ("annotations",),
    "charades": ("annotations", "sta_train", "sta_test", "charades_csv"),
}
SPLIT_SETTINGS = ("75_25", "50_50")


def _split_setting(value: Any) -> Any:
    """YAML reads an unquoted 75_25 as the integer 7525: accepted, as prepare always has."""
    aliases = {int(s.replace("_", "")): s for s in SPLIT_SETTINGS}
    if type(value) is int and value in aliases:
        return aliases[value]
    if not isinstance(value, str):
        raise PydanticCustomError("params_note", "quote it: YAML reads an unquoted 75_25 as the number 7525", {})
    return value


class PrepareParams(Section):
    dataset: Literal[DATASETS]
    annotations: PATH = Optional()
    video_dir: PATH | None = Optional()  # null: no videos (features come from an import)
    protocol: Literal["open", "closed"] = "closed"
    split_setting: Annotated[Literal[SPLIT_SETTINGS], BeforeValidator(_split_setting)] = Optional()
    split_id: Int(ge=0) = 0
    unseen_list: PATH | None = Optional()
    seen_list: PATH | None = Optional()
    allow_empty: StrictBool = False
    video_info: PATH | None = Optional()
    sta_train: PATH = Optional()
    sta_test: PATH = Optional()
    charades_csv: ListOf(PATH, min_length=1) = Optional()

    @model_validator(mode="after")
    def _dataset_keys(self) -> PrepareParams:
        for name, datasets in DATASET_KEYS.items():
            if name in self.model_fields_set and self.dataset not in datasets:
                raise _problem(name, f"not read for dataset '{self.dataset}' (only for {', '.join(datasets)}), got "
                                     f"{_show_as_written(getattr(self, name))}: remove it or change prepare.dataset")
        for name in REQUIRED_BY_DATASET[self.dataset]:
            if getattr(self, name) in (None, ""):
                raise _problem(name, f"missing (expected {expected_at(PrepareParams, (name,))}, required for "
                                     f"dataset '{self.dataset}')")
        if self.dataset == "charades":  # annotations is the folder of its files: DVC hashes that folder
            folder = Path(str(self.annotations))
            for name in ("sta_train", "sta_test", "charades_csv"):
                value = getattr(self, name)
                for path in value if isinstance(value, list) else [value]:
                    if folder not in Path(str(path)).parents:
                        raise _problem(name, f"expected a file inside prepare.annotations ({folder}, the folder "
                                             f"dvc.yaml's prepare stage depends on), got {_show_as_written(path)}")
        if self.seen_list and not self.unseen_list:
            raise _problem("seen_list", f"only read together with prepare.unseen_list, got "
                                            f"{_show_as_written(self.seen_list)}")
        return self


# --- generate (pipeline/priors/config.py GenerateConfig, build_config) ---------------------------------------


def _template(allowed: set[str]) -> Callable[[str], str | None]:
    names = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"

    def rule(text: str) -> str | None:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as err:
            return f"expected a template with placeholders {names} ({err})"
        unknown = used - allowed
        if unknown:
            return f"expected a template with placeholders {names}, not {', '.join('{' + u + '}' for u in unknown)}"
        return None

    return rule


def _template_text(allowed: set[str]) -> Any:
    return Text(rule=_template(allowed))


TEXT_BACKENDS = ("offline", "openai", "hf")
IMAGE_BACKENDS = ("offline", "openai", "diffusers", "openworld")

DEFAULT_SYSTEM_PROMPT = (
    "You write short, concrete visual descriptions of human actions for a video understanding model."
)
DEFAULT_TEXT_PROMPT = (
    'Describe the action "{action}" in {k} different sentences of about {words} words each. Each sentence '
    "describes what a video of someone doing this action shows: the person, their movements, the objects "
    "involved and the setting. Vary the setting and viewpoint from sentence to sentence. Do not number them."
)
# Local LMs are asked for one sentence at a time; k samples give the k descriptions.
DEFAULT_HF_PROMPT = (
    'Describe what a video of the action "{action}" shows, in one sentence of about {words} words.\n'
    "Description:"
)
DEFAULT_IMAGE_PROMPT = "A realistic photograph of {action}: {sentence}"


class GenerateParams(Section):
    out: PATH = Path("cache/priors")
    store: PATH | None = None  # the content-addressed item cache; null: the out folder itself
    index: PATH = Path("cache/prepare/index.json")
    text_backend: Literal[TEXT_BACKENDS] = "offline"
    image_backend: Literal[IMAGE_BACKENDS] = "offline"
    text_model: Text() | None = None
    image_model: Text() | None = None
    k: Int(ge=1) = 4
    seed: Int(ge=0) = 0
    image_size: Int(ge=1, le=4096) = 224
    concurrency: Int(ge=1) = 8
    max_retries: Int(ge=0) = 4
    malformed_retries: Int(ge=0) = 2
    backoff_s: Number(ge=0) = 1.0
    backoff_max_s: Number(ge=0) = 30.0
    timeout_s: Number(gt=0) = 60.0
    target_words: Int(ge=1) = 30
    min_words: Int(ge=1) = 6
    max_words: Int(ge=1) = 60
    text_system_prompt: _template_text(set()) = DEFAULT_SYSTEM_PROMPT
    text_prompt: _template_text({"action", "k", "words"}) = DEFAULT_TEXT_PROMPT
    hf_prompt: _template_text({"action", "words"}) = DEFAULT_HF_PROMPT
    image_prompt: _template_text({"action", "sentence"}) = DEFAULT_IMAGE_PROMPT
    openai_image_size: Text("a size WIDTHxHEIGHT (e.g. 1024x1024) or auto", pattern=r"^(\d+x\d+|auto)$") = "1024x1024"
    openai_image_quality: Text() | None = None  # null: the model's default (dall-e-3: standard)
    hf_max_new_tokens: Int(ge=1) = 60
    hf_temperature: Number(gt=0) = 0.9
    hf_top_p: Number(gt=0, le=1) = 0.95
    diffusion_steps: Int(ge=1) = 30
    guidance_scale: Number(ge=0) = 7.5
    diffusion_resolution: Int(ge=8, multiple_of=8) | None = None
    negative_prompt: Text() = ""
    device: DEVICE = "auto"
    openworld_dir: PATH | None = None

    @model_validator(mode="after")
    def _rules(self) -> GenerateParams:
        if self.min_words > self.max_words:
            raise _problem("min_words", f"expected an integer <= generate.max_words ({self.max_words}), "
                                        f"got {_shown(self.min_words)}")
        if self.image_backend == "openworld" and self.openworld_dir is None:
            raise _problem("openworld_dir", "expected a path (a folder with one folder per class) for "
                                            "image_backend 'openworld', got null")
        return self


# --- extract (pipeline/features/settings.py reads it; grizal/encoders clip.py, flow.py, video.py) ------------


def _name_template(text: str) -> str | None:
    try:
        text.format("x", name="x", **{"class": "x"})
    except KeyError as err:
        problem = f"{{{err.args[0]}}} is not one of them"
    except (IndexError, ValueError, AttributeError) as err:
        problem = str(err)
    else:
        return None
    return f"expected a template where {{}}, {{name}} or {{class}} stands for the class name ({problem})"


class ExtractOut(Section):
    rgb: PATH = Path("cache/features/rgb.zarr")
    flow: PATH = Path("cache/features/flow.zarr")
    priors: PATH = Path("cache/features/priors.zarr")


class ClipParams(Section):
    model: Text("an open_clip model name", nonempty=True) = "ViT-B-32-quickgelu"
    pretrained: Text("a pretrained tag or a checkpoint file", nonempty=True) | None = "openai"
    seed: Int(ge=0) = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # grizal/precision.py
    batch_size: Int(ge=1) = 64


class FramesParams(Section):
    sample_fps: Number(ge=1e-3) | None = 5.0  # null: every frame
    min_frames: Int(ge=2) = 2


class FrameEncoderParams(Section):
    """The rgb stream's encoder (grizal/encoders/video.py); open_clip: the `clip` model."""

    family: Literal["open_clip", "torchvision_video"] = "open_clip"
    model: Literal["r2plus1d_18", "r3d_18", "mc3_18", "s3d", "mvit_v1_b", "mvit_v2_s"] = "r2plus1d_18"
    weights: Text("a torchvision weights name (DEFAULT, KINETICS400_V1) or a checkpoint file",
                  nonempty=True) | None = "DEFAULT"
    seed: Int(ge=0) = 0
    window: Int(ge=1) = 16
    stride: Int(ge=1) = 1
    batch_size: Int(ge=1) = 8
    crop_size: Int(ge=8) | None = None  # null: the weights' own crop (112 or 224)


class FarnebackParams(Section):
    """OpenCV's calcOpticalFlowFarneback arguments; those not given keep FARNEBACK_DEFAULTS."""

    pyr_scale: Number(gt=0, lt=1) = Optional()
    levels: Int(ge=0) = Optional()
    winsize: Int(ge=1) = Optional()
    iterations: Int(ge=1) = Optional()
    poly_n: Int(ge=1) = Optional()
    poly_sigma: Number(gt=0) = Optional()


class FlowParams(Section):
    method: Literal["farneback", "dis", "raft_small", "raft_large"] = "raft_large"
    max_side: Int(ge=8) | None = 256
    raft_weights: Text("a torchvision weights tag or a file") | None = "DEFAULT"
    num_flow_updates: Int(ge=1) = 12
    autocast: Literal["auto", "bf16", "fp16", "none"] = "auto"
    seed: Int(ge=0) = 0
    batch_size: Int(ge=1) = 8
    wheel_max_magnitude: Number(gt=0) | None = None
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    farneback: FarnebackParams | None = Field(default_factory=FarnebackParams)  # null: all of OpenCV's defaults


class ExtractPriorsParams(Section):
    name_template: Text(rule=_name_template) = "a video of a person {}"
    joint_unit: Literal["concat", "gafnet", "pooled"] = "concat"  # grizal/encoders/priors.py


class ExtractParams(Section):
    index: PATH = Path("cache/prepare/index.json")
    priors_json: PATH = Path("cache/priors/priors.json")
    out: ExtractOut = Field(default_factory=ExtractOut)
    device: DEVICE = "auto"
    T: Int(ge=1) = 100
    max_failure_fraction: Number(ge=0, le=1) = 0.05
    queue_size: Int(ge=1) = 128
    decode_workers: Int(ge=1) = 2
    clip: ClipParams = Field(default_factory=ClipParams)
    frames: FramesParams = Field(default_factory=FramesParams)
    frame_encoder: FrameEncoderParams = Field(default_factory=FrameEncoderParams)
    flow: FlowParams = Field(default_factory=FlowParams)
    priors: ExtractPriorsParams = Field(default_factory=ExtractPriorsParams)


# --- model (grizal/model/config.py ModelConfig) -------------------------------------------------------------


class ModelParams(Section):
    # The input sizes come from the feature stores when the model is built; a value here is overridden.
    rgb_dim: Int(ge=1) = Optional()
    flow_dim: Int(ge=1) = Optional()
    prior_dim: Int(ge=1) = Optional()
    width: Int(ge=1) = 512
    heads: Int(ge=1) = 8
    vle_layers: Int(ge=0) = 7
    ofe_layers: Int(ge=0) = 2
    ft_layers: Int(ge=1) = 1  # the F-Transformer is the mainstream
    mlp_ratio: Number(gt=0) = 4.0
    dropout: Number(ge=0, lt=1) = 0.1
    k: Int(ge=1) = 4  # at most the prior pairs the store holds: checked when the store is read
    use_flow: StrictBool = True
    use_fourier: StrictBool = True
    use_images: StrictBool = True
    use_texts: StrictBool = True
    use_name: StrictBool = False
    pool_flow: StrictBool = False
    image_tokens: Literal["patches", "pooled"] = "patches"  # every patch token, or one pooled per image
    head: Literal["mlp", "matching"] = "mlp"  # the paper's MLP on Z_ft, or cosine matching of snippet and Z_CLS

    @model_validator(mode="after")
    def _heads(self) -> ModelParams:
        if self.width % self.heads:
            raise _problem("width", f"expected a multiple of model.heads ({self.heads}), got {_shown(self.width)}")
        return self


# --- loss (grizal/losses.py LOSS_DEFAULTS, loss_config) -----------------------------------------------------


class LossParams(Section):
    bce: Number(ge=0) = 1.0
    tiou: Number(ge=0) = 1.0
    cosine: Number(ge=0) = 0.5
    infonce: Number(ge=0) = 0.5
    temperature: Number(gt=0) = 0.07
    tiou_smooth: Number(ge=0) = 1.0
    objective: Literal["all", "supervised", "self_supervised"] = "all"


# --- train (pipeline/modelling/fit.py TrainConfig is built from it; torch.optim.Adam) ------------------------


class TrainParams(Section):
    epochs: Int(ge=1) = 30
    batch_size: Int(ge=1) = 32
    lr: Number(gt=0) = 3e-4
    weight_decay: Number(ge=0) = 0.0
    betas: ListOf(Number(ge=0, lt=1), min_length=2, max_length=2) = [0.9, 0.999]
    eps: Number(ge=0) = 1e-8
    warmup_fraction: Number(ge=0, le=1) = 0.1
    negatives_per_positive: Number(ge=0) = 1.0
    hard_negatives: Int(ge=0) = 0
    hard_negative_pool: Int(ge=1) = 3
    grad_clip: Number(ge=0) | None = 1.0  # 0 or null: no clipping
    seed: Int(ge=0, le=2**32 - 1) = 0  # numpy's seed range
    device: DEVICE = "auto"
    T: Int(ge=1) | None = None  # snippets per video the model reads; null: the stores' extract.T
    # autocast: auto is bf16 on a CUDA GPU that runs it natively and fp32 on every CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"


# --- localization (grizal/localization.py LOCALIZATION_DEFAULTS, localization_config) ----------------------


class LocalizationParams(Section):
    thresholds: ListOf(Number(gt=0, lt=1), min_length=1, scalar_ok=True) = [0.3, 0.4, 0.5, 0.6, 0.7]
    merge_gap: Number(ge=0) = 0.0
    min_length: Number(ge=0) = 0.0
    score: Literal["mean", "contrast", "max"] = "contrast"
    context: Number(ge=0) = 0.25
    nms: Literal["soft", "hard", "none"] = "soft"
    nms_sigma: Number(gt=0) = 0.5
    nms_iou: Number(ge=0, le=1) = 0.5
    min_score: Number(ge=0) = 0.001
    max_segments: Int(ge=1) = 100
    cross_class: Literal["none", "geometric"] = "none"


# --- evaluate (pipeline/modelling/scoring.py thresholds_from_params; the evaluate stage) -------------------


def _tiou_key(value: float) -> str:
    return f"{value:g}"  # scoring.threshold_key: the JSON key a threshold is reported under


TIOUS = ListOf(Number(gt=0, le=1), min_length=1, unique=_tiou_key)


# The training-free baselines' own localization: any `localization` key, replacing that section's value for them
# (pipeline/modelling/baselines.py); the keys not given are the `localization` section's.
BaselineLocalization = create_model(
    "BaselineLocalization", __base__=Section,
    **{name: (field.annotation | None, Optional()) for name, field in LocalizationParams.model_fields.items()})


class EvaluateParams(Section):
    tious: TIOUS
    report_tious: TIOUS | None = Optional()  # null or absent: the tious
    n_plots: Int(ge=0) = 6
    device: DEVICE = "auto"
    diagnosis_tiou: Number(gt=0, le=1) = 0.5  # DETAD-style diagnosis (pipeline/modelling/diagnosis.py)
    baseline_localization: BaselineLocalization = Field(default_factory=BaselineLocalization)


# --- results (pipeline/modelling/variants.py BUILT_IN, pipeline/modelling/grid.py grid_jobs, run_grid) -------

VARIANTS = ("GRIZAL", "w/o images", "w/o texts", "w/o flow", "w/o Fourier", "w/o Fourier and OF", "supervised only",
            "self-supervised only", "w/o cosine", "k=1", "k=2", "k=3", "k=4", "k=8", "N=1", "N=3", "N=5", "N=7", "N=9")
VARIANT_KEYS = ("model", "loss", "train", "localization", "features")
_VARIANT_NAMES = f"a non-empty list of items, each one of {', '.join(VARIANTS)} without repeats"
_VARIANTS_EXPECTED = f"{_VARIANT_NAMES}, or a mapping name -> null or overrides ({', '.join(VARIANT_KEYS)})"


def _variants(value: Any) -> Any:
    """A list of built-in names, or a mapping name -> null (the built-in of that name) or section overrides
    (model, loss, train, localization) and an optional `features` folder."""
    if isinstance(value, list | tuple) and value:
        for i, name in enumerate(value):
            if isinstance(name, bool) or name not in VARIANTS:
                close = _closest(name, VARIANTS) if isinstance(name, str) else None
                raise _problem(f"[{i}]", f"expected one of {', '.join(VARIANTS)}, got {_shown(name)}"
                                         + (f" (did you mean '{close}'?)" if close else ""))
            if name in value[:i]:
                raise _problem("", f"expected {_VARIANT_NAMES}, got {_shown(value)} ({_shown(name)} is repeated)")
        return list(value)
    if isinstance(value, list | tuple):  # empty
        raise _problem("", f"expected {_VARIANT_NAMES}, got {_shown(value)}")
    if not isinstance(value, dict) or not value:
        raise _problem("", f"expected {_VARIANTS_EXPECTED}, got {_shown(value)}")
    for name, spec in value.items():
        if spec is None:
            if name not in VARIANTS:
                raise _problem(f".{name}", "null means the built-in variant of that name, and there is none "
                                           f"(built in: {', '.join(VARIANTS)})")
            continue
        if not isinstance(spec, dict):
            raise _problem(f".{name}", f"expected null or a mapping of overrides ({', '.join(VARIANT_KEYS)}), "
                                       f"got {_shown(spec)}")
        for part, override in spec.items():
            if part not in VARIANT_KEYS:
                close = _closest(part, VARIANT_KEYS) if isinstance(part, str) else None
                hint = f" (did you mean '{close}'?)" if close else ""
                raise _problem(f".{name}.{part}", f"unknown key{hint}; extract and generate settings need the "
                                                  "variant's own feature stores (`features:` or dvc exp run -S)")
            if part == "features":
                if not isinstance(override, str) or not override:
                    raise _problem(f".{name}.features", f"expected a folder path, got {_shown(override)}")
            elif not isinstance(override, dict):
                raise _problem(f".{name}.{part}", f"expected a mapping, got {_shown(override)}")
    return value


_VARIANTS_SCHEMA = {"description": _VARIANTS_EXPECTED, "anyOf": [
    {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(VARIANTS)}},
    {"type": "object", "minProperties": 1, "additionalProperties": {"anyOf": [
        {"type": "null"},
        {"type": "object", "additionalProperties": False,
         "properties": {**{k: {"type": "object"} for k in VARIANT_KEYS[:-1]}, "features": {"type": "string"}}},
    ]}},
]}


class ResultsParams(Section):
    splits: ListOf(Int(ge=0), unique=lambda s: s) = Optional()  # the open-set split ids, read when protocol is open
    seeds: ListOf(Int(ge=0, le=2**32 - 1), min_length=1, unique=lambda s: s) = Optional()  # absent: train.seed
    ablation_seeds: ListOf(Int(ge=0, le=2**32 - 1), min_length=1, unique=lambda s: s) = Optional()  # : seeds[0]
    variants: Annotated[Any, AfterValidator(_variants), WithJsonSchema(_VARIANTS_SCHEMA)]
    closed_set: StrictBool = True
    workers: Int(ge=1) = 1

    @model_validator(mode="after")
    def _splits(self, info: ValidationInfo) -> ResultsParams:
        params = (info.context or {}).get("params", {})
        prepare = params.get("prepare") if isinstance(params.get("prepare"), dict) else {}
        if self.splits is None and prepare.get("protocol", "closed") == "open":
            raise _problem("splits", f"missing (expected {expected_at(ResultsParams, ('splits',))}; "
                                     "prepare.protocol is open)")
        return self


SCHEMAS: dict[str, type[Section]] = {
    "demo": DemoParams,
    "pretrain": PretrainParams,
    "prepare": PrepareParams,
    "generate": GenerateParams,
    "extract": ExtractParams,
    "model": ModelParams,
    "loss": LossParams,
    "train": TrainParams,
    "localization": LocalizationParams,
    "evaluate": EvaluateParams,
    "results": ResultsParams,
}
# Sections the code reads with `.get(name, {})`: absent (or empty) means all defaults.
OPTIONAL_SECTIONS = {"loss"}


# --- what is expected, in words, from the JSON Schema -------------------------------------------------------


def _range(node: dict[str, Any]) -> str:
    def num(x: float) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    low, low_open = (node["exclusiveMinimum"], True) if "exclusiveMinimum" in node else (node.get("minimum"), False)
    high, high_open = (node["exclusiveMaximum"], True) if "exclusiveMaximum" in node else (node.get("maximum"), False)
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{num(low)}, {num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {num(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {num(high)}"
    return ""


def _plural(expected: str) -> str:
    """'a number > 0' -> 'numbers > 0', for the items of a list."""
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings"),
                      ("a path", "paths"), ("an even integer", "even integers"), ("a multiple", "multiples")):
        if expected.startswith(one):
            return many + expected[len(one):]
    return "items, each " + expected


def _describe(node: dict[str, Any], defs: dict[str, Any]) -> str:
    node = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
    if "anyOf" in node:
        kinds = [b for b in node["anyOf"] if b.get("type") != "null"]
        inner = node.get("description") or " or ".join(_describe(b, defs) for b in kinds)
        return inner + (" or null" if len(kinds) < len(node["anyOf"]) else "")
    if "description" in node and node.get("type") != "object":
        return node["description"]
    if "enum" in node:
        return "one of " + ", ".join(str(c) for c in node["enum"])
    kind = node.get("type")
    if kind == "integer":
        step = node.get("multipleOf")
        return {None: "an integer", 2: "an even integer"}.get(step, f"a multiple of {step}") + _range(node)
    if kind == "number":
        return "a number" + _range(node)
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        low, high = node.get("minItems", 0), node.get("maxItems")
        if high is not None:
            size = f"a list of {low}" if high == low else f"a list of {low} to {high}"
        else:
            size = "a non-empty list of" if low == 1 else "a list of"
        return f"{size} {_plural(_describe(node['items'], defs))}" + (" without repeats" if node.get("uniqueItems")
                                                                       else "")
    if kind == "object":
        return "a mapping of settings"
    return "a string"


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _node_at(model: type[BaseModel], loc: tuple) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = _schema(model)
    defs = schema.get("$defs", {})
    node: dict[str, Any] = schema
    for part in loc:
        node = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
        if "anyOf" in node and "properties" not in node and "items" not in node:
            node = next(b for b in node["anyOf"] if b.get("type") != "null")
            node = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
        node = node["items"] if isinstance(part, int) else node["properties"][part]
    return node, defs


def expected_at(model: type[BaseModel], loc: tuple) -> str:
    """What the value at ``loc`` of ``model`` must be, in words (``a number in [0, 1)``)."""
    return _describe(*_node_at(model, loc))


def _number_hint(value: Any) -> str:
    """Why a number came out as something else: the YAML 1.1 spellings that trip people up."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", text):
            mantissa, exponent = re.split("[eE]", text)
            return f" (YAML reads {text} as text: write {mantissa}.0e{exponent})"
        try:
            float(text)
        except ValueError:
            return ""
        return " (a quoted number: remove the quotes)"
    if isinstance(value, bool):
        return " (true/false, yes/no and on/off are booleans in YAML)"
    return ""


def _bool_hint(value: Any) -> str:
    return " (YAML reads unquoted yes/no/on/off/true/false as a boolean: quote it)" if isinstance(value, bool) else ""


def _hint(error: dict[str, Any], node: dict[str, Any]) -> str:
    kind, value = error["type"], error["input"]
    if kind.startswith("int_"):
        if isinstance(value, float) and value.is_integer():
            return f" (write {int(value)}, without the decimal point)"
        return _number_hint(value)
    if kind in ("float_type", "finite_number"):
        return _number_hint(value)
    if kind.startswith("bool_"):
        return " (quoted: remove the quotes)" if str(value).lower() in ("true", "false", "yes", "no") else ""
    if kind == "literal_error":
        close = _closest(value, node.get("enum", ())) if isinstance(value, str) else None
        return f" (did you mean '{close}'?)" if close else _bool_hint(value)
    if kind == "params_note":
        return f" ({error['msg']})"
    if kind == "string_type":
        return _bool_hint(value)
    return ""


def _message(model: type[BaseModel], section: str, error: dict[str, Any]) -> str:
    """One pydantic error as ``<dotted.key>: <problem>``."""
    loc = tuple(error["loc"])
    key = section + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    kind, value = error["type"], error.get("input")
    if kind == "params_rule":
        suffix = error["ctx"]["key"]
        return f"{key}{suffix if suffix[:1] in ('', '.', '[') else '.' + suffix}: {error['ctx']['problem']}"
    if kind == "extra_forbidden":
        parent, defs = _node_at(model, loc[:-1])
        parent = defs[parent["$ref"].split("/")[-1]] if "$ref" in parent else parent
        if "anyOf" in parent:
            parent = next(b for b in parent["anyOf"] if b.get("type") != "null")
            parent = defs[parent["$ref"].split("/")[-1]] if "$ref" in parent else parent
        known = list(parent.get("properties", ()))
        close = _closest(loc[-1], known)
        return f"{key}: unknown key ({f'did you mean {close!r}?' if close else 'known: ' + ', '.join(known)})"
    node, defs = _node_at(model, loc)
    expected = _describe(node, defs)
    if kind == "missing":
        return f"{key}: missing (expected {expected})"
    if kind == "params_text":
        return f"{key}: {error['ctx']['problem']}, got {_shown(value)}"
    if kind == "params_repeated":
        return f"{key}: expected {expected}, got {_shown(value)} ({_shown(error['ctx']['repeated'])} is repeated)"
    return f"{key}: expected {expected}, got {_shown(value)}{_hint(error, node)}"


def _first(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The error to report: an unknown key first (its siblings may only look wrong because of it)."""
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _plain(value: Any, given: Any, fill: bool) -> Any:
    if isinstance(value, Path):
        return given if isinstance(given, str) else str(value)
    if isinstance(value, BaseModel):
        return _dump(value, given if isinstance(given, dict) else {}, fill)
    if isinstance(value, list):
        return [_plain(v, g, fill) for v, g in zip(value, given if isinstance(given, list) else value, strict=False)]
    return value


def _dump(model: BaseModel, given: dict[str, Any], fill: bool) -> dict[str, Any]:
    """The checked values of the keys given, in the user's order, then (``fill``) the defaults of the others."""
    out = {name: _plain(getattr(model, name), given[name], fill) for name in given}
    if fill:
        for name, field in type(model).model_fields.items():
            if name not in out and not _has_no_default(field):
                out[name] = _plain(getattr(model, name), None, True)
    return out


def validate_section(params: dict[str, Any], name: str, where: str | os.PathLike | None,
                     fill_defaults: bool = True) -> dict[str, Any]:
    """The section ``name`` of ``params`` (read from ``where``) checked against its model, with the defaults of
    the keys not given filled in (``fill_defaults=False``: only the keys given); the first problem is a UserError
    naming ``where``, the dotted key, the value and what is expected."""
    return section_dict(check_section(params, name, where), params.get(name), fill_defaults)


def check_section(params: dict[str, Any], name: str, where: str | os.PathLike | None,
                  model: type[Section] | None = None) -> Section:
    """The section ``name`` of ``params`` as its model (or ``model``, a subclass a stage reads); bad values are a
    UserError."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema for section '{name}' (known: {', '.join(SCHEMAS)})")
    model = model or SCHEMAS[name]
    value = params.get(name)
    if value is None and name in OPTIONAL_SECTIONS:
        value = {}
    if name not in params and value is None:
        close = _closest(name, [k for k in params if isinstance(k, str)])
        raise UserError(where, f"missing section '{name}'" + (f" (did you mean '{close}'?)" if close else ""))
    if not isinstance(value, dict):
        raise UserError(where, f"{name}: expected a mapping of settings, got {_shown(value)}")
    try:
        return model.model_validate(value, context={"params": params})
    except ValidationError as err:
        problem = _message(model, name, _first(err.errors(include_url=False)))
        raise UserError(where, " ".join(problem.split("\n"))) from None


def section_dict(checked: Section, given: dict[str, Any] | None, fill_defaults: bool = True) -> dict[str, Any]:
    """A checked section as plain data: the keys given (in their order), and the defaults with ``fill_defaults``."""
    return _dump(checked, given or {}, fill_defaults)


def validate_params(params: dict[str, Any], names: Iterable[str], where: str | os.PathLike | None,
                    fill_defaults: bool = True) -> dict[str, Any]:
    """``params`` with each section in ``names`` checked (and filled in) by ``validate_section``."""
    out = dict(params)
    for name in names:
        out[name] = validate_section(params, name, where, fill_defaults)
    return out


class ParamsFile(BaseModel):
    """A whole params file (params.yaml, a paper config): the sections, each optional where a file leaves it out;
    other top-level keys are the file's own (DVC `vars`, YAML anchors)."""

    model_config = ConfigDict(extra="allow", title="grizal params.yaml")

    demo: DemoParams | None = None
    pretrain: PretrainParams | None = None
    prepare: PrepareParams | None = None
    generate: GenerateParams | None = None
    extract: ExtractParams | None = None
    model: ModelParams | None = None
    loss: LossParams | None = None
    train: TrainParams | None = None
    localization: LocalizationParams | None = None
    evaluate: EvaluateParams | None = None
    results: ResultsParams | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of params.yaml, for editors (yaml-language-server) and for checking files without grizal."""
    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            if node.pop(NO_DEFAULT, False):
                node.pop("default", None)
            return {k: clean(v) for k, v in node.items()}
        return [clean(v) for v in node] if isinstance(node, list) else node

    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **clean(ParamsFile.model_json_schema())}
