"""The typed schema of every params section, checked at each stage's door.

``validate_section(params, "train", where)`` checks the ``train`` section of a loaded params file and returns it
with the code's defaults filled in. The first problem found is a ``UserError`` of one line naming the file passed,
the dotted key, the value and what is expected::

    error: configs/x.yaml: train.epochs: expected an integer >= 1, got 'ten'
    error: configs/x.yaml: extract.clip.modle: unknown key (did you mean 'model'?)
    error: configs/x.yaml: missing section 'train'

The schemas restate what the code reading each section accepts (the dataclasses and ``*_config`` functions named
next to each schema below; tests/test_params_schema.py checks the defaults against them). What needs data only a
running stage has stays with that stage: ``model.k`` against the prior pairs in the store, a device being present,
files existing, split ids against the published split lists.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.common import UserError


class Invalid(Exception):
    """A problem at a dotted key, turned into a UserError naming the params file by ``validate_section``."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Marker("REQUIRED")  # the key must be given
NO_DEFAULT = _Marker("NO_DEFAULT")  # optional, and nothing is filled in when absent
FILL = _Marker("FILL")  # a nested section: absent means all of its defaults


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


def _closest(word: Any, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    def num(x: float) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{num(low)}, {num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {num(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {num(high)}"
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


class Kind:
    """What a value must be; ``check`` returns the value to use or raises Invalid."""

    expected = "a value"

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, key: str, hint: str = "") -> Invalid:
        return Invalid(key, f"expected {self.expected}, got {show(value)}{hint}")


@dataclass
class Int(Kind):
    min: int | None = None
    max: int | None = None
    multiple_of: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        what = {None: "an integer", 2: "an even integer"}.get(self.multiple_of, f"a multiple of {self.multiple_of}")
        return f"{what} {_range(self.min, self.max, False, False)}".rstrip()

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = _number_hint(value)
            if isinstance(value, float) and value.is_integer():
                hint = f" (write {int(value)}, without the decimal point)"
            raise self.fail(value, key, hint)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max) \
                or (self.multiple_of is not None and value % self.multiple_of):
            raise self.fail(value, key)
        return value


@dataclass
class Number(Kind):
    """A finite int or float (an int is fine where a float is expected; a boolean never is)."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"a number {_range(self.min, self.max, self.min_open, self.max_open)}".rstrip()

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if not _is_number(value) or not math.isfinite(value):
            raise self.fail(value, key, _number_hint(value))
        low_ok = self.min is None or (value > self.min if self.min_open else value >= self.min)
        high_ok = self.max is None or (value < self.max if self.max_open else value <= self.max)
        if not (low_ok and high_ok):
            raise self.fail(value, key)
        return value


class Bool(Kind):
    expected = "true or false"

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if not isinstance(value, bool):
            hint = " (quoted: remove the quotes)" if str(value).lower() in ("true", "false", "yes", "no") else ""
            raise self.fail(value, key, hint)
        return value


def _bool_hint(value: Any) -> str:
    return " (YAML reads unquoted yes/no/on/off/true/false as a boolean: quote it)" if isinstance(value, bool) else ""


@dataclass
class Text(Kind):
    """A string; ``rule`` returns a problem with the text (or None) for checks beyond its type."""

    expected: str = "a string"  # type: ignore[assignment]
    nonempty: bool = False
    rule: Callable[[str], str | None] | None = None

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if not isinstance(value, str) or (self.nonempty and not value.strip()):
            raise self.fail(value, key, _bool_hint(value))
        problem = self.rule(value) if self.rule else None
        if problem:
            raise Invalid(key, f"{problem}, got {show(value)}")
        return value


PATH = Text("a path", nonempty=True)


@dataclass
class Choice(Kind):
    """One of ``choices``; ``aliases`` maps accepted spellings to a choice; ``note`` explains a wrong type."""

    choices: tuple[Any, ...]
    aliases: dict[Any, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(str(c) for c in self.choices)

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if not isinstance(value, bool) and value in self.aliases:
            return self.aliases[value]
        if isinstance(value, bool) or value not in self.choices:
            close = _closest(value, self.choices) if isinstance(value, str) else None
            hint = f" (did you mean '{close}'?)" if close else _bool_hint(value)
            if self.note and not isinstance(value, str):
                hint = f" ({self.note})"
            raise self.fail(value, key, hint)
        return value


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


# A device name (grizal.devices.resolve_device); whether it is present here is checked when it is used.
DEVICES = "auto, cpu, cuda, cuda:N or mps"
DEVICE = Text(f"a device: {DEVICES}",
              rule=lambda v: None if DEVICE_PATTERN.fullmatch(v) else f"expected a device: {DEVICES}")


def _plural(expected: str) -> str:
    """'a number > 0' -> 'numbers > 0', for the items of a list."""
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings"),
                      ("a path", "paths"), ("an even integer", "even integers"), ("a multiple", "multiples")):
        if expected.startswith(one):
            return many + expected[len(one):]
    return "items, each " + expected


@dataclass
class ListOf(Kind):
    item: Kind
    min_len: int = 0
    max_len: int | None = None
    unique: Callable[[Any], Any] | None = None  # items must differ by this key
    scalar_ok: bool = False  # a single item stands for a list of one

    @property
    def expected(self) -> str:  # type: ignore[override]
        if self.max_len is not None and self.max_len == self.min_len:
            size = f"a list of {self.min_len}"
        elif self.max_len is not None:
            size = f"a list of {self.min_len} to {self.max_len}"
        else:
            size = "a non-empty list of" if self.min_len == 1 else "a list of"
        return f"{size} {_plural(self.item.expected)}" + (" without repeats" if self.unique else "")

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if self.scalar_ok and not isinstance(value, list | tuple | dict | str | type(None)):
            value = [value]
        if not isinstance(value, list | tuple):
            raise self.fail(value, key)
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            raise self.fail(value, key)
        items = [self.item.check(v, f"{key}[{i}]", params) for i, v in enumerate(value)]
        if self.unique is not None:
            keys = [self.unique(v) for v in items]
            repeated = next((items[i] for i, k in enumerate(keys) if k in keys[:i]), None)
            if len(set(keys)) != len(keys):
                raise Invalid(key, f"expected {self.expected}, got {show(value)} ({show(repeated)} is repeated)")
        return items


@dataclass
class Maybe(Kind):
    """``inner`` or null."""

    inner: Kind

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"{self.inner.expected} or null"

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if value is None:
            return None
        try:
            return self.inner.check(value, key, params)
        except Invalid as err:
            raise Invalid(err.key, err.problem.replace(f"expected {self.inner.expected},",
                                                      f"expected {self.expected},", 1)) from None


@dataclass(frozen=True)
class Field:
    kind: Kind
    default: Any = NO_DEFAULT


Check = Callable[[dict[str, Any], str, dict[str, Any]], None]


@dataclass
class Section(Kind):
    """A mapping with known keys; ``checks`` see the checked values (and the whole params) for rules across keys."""

    fields: dict[str, Field]
    checks: tuple[Check, ...] = ()
    expected: str = "a mapping of settings"  # type: ignore[assignment]

    def check(self, value: Any, key: str, params: dict[str, Any], fill: bool = True) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(value, key)
        for name in value:
            if name not in self.fields:
                close = _closest(name, self.fields)
                why = f"did you mean '{close}'?" if close else f"known: {', '.join(self.fields)}"
                raise Invalid(f"{key}.{name}", f"unknown key ({why})")
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in value:
                kind = spec.kind
                checked = (kind.check(value[name], f"{key}.{name}", params, fill) if isinstance(kind, Section)
                           else kind.check(value[name], f"{key}.{name}", params))
                out[name] = checked
            elif spec.default is REQUIRED:
                raise Invalid(f"{key}.{name}", f"missing (expected {spec.kind.expected})")
        for check in self.checks:
            check(out, key, params)
        given = {name: out[name] for name in value}  # in the user's order
        return self._with_defaults(given, key, params) if fill else given

    def _with_defaults(self, given: dict[str, Any], key: str, params: dict[str, Any]) -> dict[str, Any]:
        filled = dict(given)
        for name, spec in self.fields.items():
            if name in filled or spec.default in (REQUIRED, NO_DEFAULT):
                continue
            if spec.default is FILL:
                filled[name] = spec.kind.check({}, f"{key}.{name}", params)
            else:
                filled[name] = copy.deepcopy(spec.default)
        return filled


# --- demo (pipeline/data/demo.py DemoConfig) ----------------------------------------------------------------


def _demo_durations(values: dict[str, Any], key: str, params: dict[str, Any]) -> None:
    low, high = values.get("min_duration", 24.0), values.get("max_duration", 36.0)
    if high < low:
        raise Invalid(f"{key}.max_duration", f"expected a number >= demo.min_duration ({low:g}), got {show(high)}")


DEMO = Section({
    "seed": Field(Int(min=0), 0),
    "videos_per_class_train": Field(Int(min=1), 3),
    "videos_per_class_test": Field(Int(min=1), 3),
    # A moving actor's path (up to 0.55 of the frame) plus its margins must fit: size > 108.4; libx264 needs
    # an even size.
    "size": Field(Int(min=110, multiple_of=2), 128),
    "fps": Field(Int(min=1), 10),  # the mp4 stream's rate is a whole number of frames per second
    # Each video holds at least one action of >= 0.5 s between 1.5 s background gaps and 1 s edges.
    "min_duration": Field(Number(min=6), 24.0),
    "max_duration": Field(Number(min=6), 36.0),
    "second_class_prob": Field(Number(min=0, max=1), 0.35),
    "out": Field(PATH),  # read and ignored: the stage's --out option names the folder
}, checks=(_demo_durations,))


# --- pretrain (pipeline/pretraining/loop.py PretrainConfig, corpus.py CorpusConfig) --------------------------


def _pretrain_rules(values: dict[str, Any], key: str, params: dict[str, Any]) -> None:
    low, high = values.get("min_radius", 7.0), values.get("max_radius", 14.0)
    if high < low:
        raise Invalid(f"{key}.max_radius", f"expected a number >= {key}.min_radius ({low:g}), got {show(high)}")
    counts = values.get("distractor_counts")
    if counts is not None and not math.isclose(sum(counts), 1.0, abs_tol=1e-6):
        raise Invalid(f"{key}.distractor_counts", f"expected probabilities of 0, 1, 2, ... distractors that sum "
                                                  f"to 1, got {show(counts)} (sum {sum(counts):g})")


PRETRAIN = Section({
    "seed": Field(Int(min=0, max=2**32 - 1), 0),
    "steps": Field(Int(min=1), 1500),
    "batch_size": Field(Int(min=2), 64),  # contrastive: each caption needs other stills as negatives
    "lr": Field(Number(min=0, min_open=True), 1e-3),
    "warmup": Field(Int(min=0), 50),
    "weight_decay": Field(Number(min=0), 0.1),
    "precision": Field(Choice(("auto", "fp32", "bf16")), "auto"),  # autocast; auto: fp32 on the CPU
    "n_stills": Field(Int(min=2), 30000),
    "min_radius": Field(Number(min=2, max=40), 7.0),  # px at the demo world's 128 px frame
    "max_radius": Field(Number(min=2, max=40), 14.0),
    "distractor_counts": Field(ListOf(Number(min=0, max=1), min_len=1), [0.0, 0.5, 0.5]),
    "trail_prob": Field(Number(min=0, max=1), 0.5),
    "long_caption_prob": Field(Number(min=0, max=1), 0.3),
    "eval_stills": Field(Int(min=1), 480),
}, checks=(_pretrain_rules,))


# --- prepare (pipeline/data/build.py) -----------------------------------------------------------------------

DATASETS = ("demo", "thumos14", "activitynet", "charades", "custom")
# Keys only some data sets read; every other key of the section is read for all of them.
DATASET_KEYS = {
    "annotations": ("demo", "thumos14", "activitynet", "custom"),
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
    "charades": ("sta_train", "sta_test", "charades_csv"),
}


def _prepare_dataset_keys(values: dict[str, Any], key: str, params: dict[str, Any]) -> None:
    dataset = values["dataset"]
    for name, datasets in DATASET_KEYS.items():
        if name in values and dataset not in datasets:
            raise Invalid(f"{key}.{name}", f"not read for dataset '{dataset}' (only for {', '.join(datasets)}), "
                                           f"got {show(values[name])}: remove it or change {key}.dataset")
    for name in REQUIRED_BY_DATASET[dataset]:
        if values.get(name) in (None, ""):
            expected = PREPARE.fields[name].kind.expected
            raise Invalid(f"{key}.{name}", f"missing (expected {expected}, required for dataset '{dataset}')")
    if values.get("seen_list") and not values.get("unseen_list"):
        raise Invalid(f"{key}.seen_list", f"only read together with {key}.unseen_list, "
                                          f"got {show(values['seen_list'])}")


PREPARE = Section({
    "dataset": Field(Choice(DATASETS), REQUIRED),
    "annotations": Field(PATH),
    "video_dir": Field(Maybe(PATH)),  # null: no videos (features come from an import)
    "protocol": Field(Choice(("open", "closed")), "closed"),
    "split_setting": Field(Choice(("75_25", "50_50"), aliases={7525: "75_25", 5050: "50_50"},
                                  note="quote it: YAML reads an unquoted 75_25 as the number 7525")),
    "split_id": Field(Int(min=0), 0),
    "unseen_list": Field(Maybe(PATH)),
    "seen_list": Field(Maybe(PATH)),
    "allow_empty": Field(Bool(), False),
    "video_info": Field(Maybe(PATH)),
    "sta_train": Field(PATH),
    "sta_test": Field(PATH),
    "charades_csv": Field(ListOf(PATH, min_len=1)),
}, checks=(_prepare_dataset_keys,))


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


def _generate_rules(values: dict[str, Any], key: str, params: dict[str, Any]) -> None:
    low, high = values.get("min_words", 6), values.get("max_words", 60)
    if low > high:
        raise Invalid(f"{key}.min_words", f"expected an integer <= {key}.max_words ({high}), got {show(low)}")
    if values.get("image_backend") == "openworld" and values.get("openworld_dir") is None:
        raise Invalid(f"{key}.openworld_dir", "expected a path (a folder with one folder per class) for "
                                              "image_backend 'openworld', got null")


TEXT_BACKENDS = ("offline", "openai", "hf")
IMAGE_BACKENDS = ("offline", "openai", "diffusers", "openworld")

GENERATE = Section({
    "out": Field(PATH, "cache/priors"),
    "store": Field(Maybe(PATH), None),
    "index": Field(PATH, "cache/prepare/index.json"),
    "text_backend": Field(Choice(TEXT_BACKENDS), "offline"),
    "image_backend": Field(Choice(IMAGE_BACKENDS), "offline"),
    "text_model": Field(Maybe(Text()), None),
    "image_model": Field(Maybe(Text()), None),
    "k": Field(Int(min=1), 4),
    "seed": Field(Int(min=0), 0),
    "image_size": Field(Int(min=1, max=4096), 224),
    "concurrency": Field(Int(min=1), 8),
    "max_retries": Field(Int(min=0), 4),
    "malformed_retries": Field(Int(min=0), 2),
    "backoff_s": Field(Number(min=0), 1.0),
    "backoff_max_s": Field(Number(min=0), 30.0),
    "timeout_s": Field(Number(min=0, min_open=True), 60.0),
    "target_words": Field(Int(min=1), 30),
    "min_words": Field(Int(min=1), 6),
    "max_words": Field(Int(min=1), 60),
    # The default prompts live in GenerateConfig; only a prompt that is given is checked here.
    "text_system_prompt": Field(Text(rule=_template(set()))),
    "text_prompt": Field(Text(rule=_template({"action", "k", "words"}))),
    "hf_prompt": Field(Text(rule=_template({"action", "words"}))),
    "image_prompt": Field(Text(rule=_template({"action", "sentence"}))),
    "openai_image_size": Field(Text("a size WIDTHxHEIGHT (e.g. 1024x1024) or auto", rule=lambda v: None if re.fullmatch(
        r"\d+x\d+|auto", v) else "expected a size WIDTHxHEIGHT (e.g. 1024x1024) or auto"), "1024x1024"),
    "openai_image_quality": Field(Maybe(Text()), None),
    "hf_max_new_tokens": Field(Int(min=1), 60),
    "hf_temperature": Field(Number(min=0, min_open=True), 0.9),
    "hf_top_p": Field(Number(min=0, max=1, min_open=True), 0.95),
    "diffusion_steps": Field(Int(min=1), 30),
    "guidance_scale": Field(Number(min=0), 7.5),
    "diffusion_resolution": Field(Maybe(Int(min=8, multiple_of=8)), None),
    "negative_prompt": Field(Text(), ""),
    "device": Field(DEVICE, "auto"),
    "openworld_dir": Field(Maybe(PATH), None),
}, checks=(_generate_rules,))


# --- extract (pipeline/features/settings.py DEFAULTS, extract_config; grizal/encoders clip.py, flow.py) -----


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


EXTRACT = Section({
    "index": Field(PATH, "cache/prepare/index.json"),
    "priors_json": Field(PATH, "cache/priors/priors.json"),
    "out": Field(Section({
        "rgb": Field(PATH, "cache/features/rgb.zarr"),
        "flow": Field(PATH, "cache/features/flow.zarr"),
        "priors": Field(PATH, "cache/features/priors.zarr"),
    }), FILL),
    "device": Field(DEVICE, "auto"),
    "T": Field(Int(min=1), 100),
    "max_failure_fraction": Field(Number(min=0, max=1), 0.05),
    "queue_size": Field(Int(min=1), 128),
    "decode_workers": Field(Int(min=1), 2),
    "clip": Field(Section({
        "model": Field(Text("an open_clip model name", nonempty=True), "ViT-B-32-quickgelu"),
        "pretrained": Field(Maybe(Text("a pretrained tag or a checkpoint file", nonempty=True)), "openai"),
        "seed": Field(Int(min=0), 0),
        "precision": Field(Choice(("auto", "fp32", "bf16", "fp16")), "auto"),  # grizal/precision.py
        "batch_size": Field(Int(min=1), 64),
    }), FILL),
    "frames": Field(Section({
        "sample_fps": Field(Maybe(Number(min=1e-3)), 5.0),  # null: every frame
        "min_frames": Field(Int(min=2), 2),
    }), FILL),
    # The rgb stream's encoder (grizal/encoders/video.py); open_clip: the `clip` model above.
    "frame_encoder": Field(Section({
        "family": Field(Choice(("open_clip", "torchvision_video")), "open_clip"),
        "model": Field(Choice(("r2plus1d_18", "r3d_18", "mc3_18", "s3d", "mvit_v1_b", "mvit_v2_s")), "r2plus1d_18"),
        "weights": Field(Maybe(Text("a torchvision weights name (DEFAULT, KINETICS400_V1) or a checkpoint file",
                                    nonempty=True)), "DEFAULT"),
        "seed": Field(Int(min=0), 0),
        "window": Field(Int(min=1), 16),
        "stride": Field(Int(min=1), 1),
        "batch_size": Field(Int(min=1), 8),
        "crop_size": Field(Maybe(Int(min=8)), None),  # null: the weights' own crop (112 or 224)
    }), FILL),
    "flow": Field(Section({
        "method": Field(Choice(("farneback", "dis", "raft_small", "raft_large")), "raft_large"),
        "max_side": Field(Maybe(Int(min=8)), 256),
        "raft_weights": Field(Maybe(Text("a torchvision weights tag or a file")), "DEFAULT"),
        "num_flow_updates": Field(Int(min=1), 12),
        "autocast": Field(Choice(("auto", "bf16", "fp16", "none")), "auto"),
        "seed": Field(Int(min=0), 0),
        "batch_size": Field(Int(min=1), 8),
        "wheel_max_magnitude": Field(Maybe(Number(min=0, min_open=True)), None),
        "dis_preset": Field(Choice(("ultrafast", "fast", "medium")), "medium"),
        # OpenCV's calcOpticalFlowFarneback arguments; those not given keep FARNEBACK_DEFAULTS (null: all).
        "farneback": Field(Maybe(Section({
            "pyr_scale": Field(Number(min=0, max=1, min_open=True, max_open=True)),
            "levels": Field(Int(min=0)),
            "winsize": Field(Int(min=1)),
            "iterations": Field(Int(min=1)),
            "poly_n": Field(Int(min=1)),
            "poly_sigma": Field(Number(min=0, min_open=True)),
        })), {}),
    }), FILL),
    "priors": Field(Section({
        "name_template": Field(Text(rule=_name_template), "a video of a person {}"),
        "joint_unit": Field(Choice(("concat", "gafnet", "pooled")), "concat"),  # grizal/encoders/priors.py
    }), FILL),
})


# --- model (grizal/model/config.py ModelConfig) -------------------------------------------------------------


def _model_heads(values: dict[str, Any], key: str, params: dict[str, Any]) -> None:
    width, heads = values.get("width", 512), values.get("heads", 8)
    if width % heads:
        raise Invalid(f"{key}.width", f"expected a multiple of {key}.heads ({heads}), got {show(width)}")


MODEL = Section({
    # The input sizes come from the feature stores when the model is built; a value here is overridden.
    "rgb_dim": Field(Int(min=1)),
    "flow_dim": Field(Int(min=1)),
    "prior_dim": Field(Int(min=1)),
    "width": Field(Int(min=1), 512),
    "heads": Field(Int(min=1), 8),
    "vle_layers": Field(Int(min=0), 7),
    "ofe_layers": Field(Int(min=0), 2),
    "ft_layers": Field(Int(min=1), 1),  # the F-Transformer is the mainstream
    "mlp_ratio": Field(Number(min=0, min_open=True), 4.0),
    "dropout": Field(Number(min=0, max=1, max_open=True), 0.1),
    "k": Field(Int(min=1), 4),  # at most the prior pairs the store holds: checked when the store is read
    "use_flow": Field(Bool(), True),
    "use_fourier": Field(Bool(), True),
    "use_images": Field(Bool(), True),
    "use_texts": Field(Bool(), True),
    "use_name": Field(Bool(), False),
    "pool_flow": Field(Bool(), False),
    "image_tokens": Field(Choice(("patches", "pooled")), "patches"),  # every patch token, or one pooled per image
}, checks=(_model_heads,))


# --- loss (grizal/losses.py LOSS_DEFAULTS, loss_config) -----------------------------------------------------

LOSS = Section({
    "bce": Field(Number(min=0), 1.0),
    "tiou": Field(Number(min=0), 1.0),
    "cosine": Field(Number(min=0), 0.5),
    "infonce": Field(Number(min=0), 0.5),
    "temperature": Field(Number(min=0, min_open=True), 0.07),
    "tiou_smooth": Field(Number(min=0), 1.0),
    "objective": Field(Choice(("all", "supervised", "self_supervised")), "all"),
})


# --- train (pipeline/modelling/fit.py TrainConfig; torch.optim.Adam) ---------------------------------------

TRAIN = Section({
    "epochs": Field(Int(min=1), 30),
    "batch_size": Field(Int(min=1), 32),
    "lr": Field(Number(min=0, min_open=True), 3e-4),
    "weight_decay": Field(Number(min=0), 0.0),
    "betas": Field(ListOf(Number(min=0, max=1, max_open=True), min_len=2, max_len=2), [0.9, 0.999]),
    "eps": Field(Number(min=0), 1e-8),
    "warmup_fraction": Field(Number(min=0, max=1), 0.1),
    "negatives_per_positive": Field(Number(min=0), 1.0),
    "hard_negatives": Field(Int(min=0), 0),
    "hard_negative_pool": Field(Int(min=1), 3),
    "grad_clip": Field(Maybe(Number(min=0)), 1.0),  # 0 or null: no clipping
    "seed": Field(Int(min=0, max=2**32 - 1), 0),  # numpy's seed range
    "device": Field(DEVICE, "auto"),
    "T": Field(Maybe(Int(min=1)), None),  # snippets per video the model reads; null: the stores' extract.T
    "precision": Field(Choice(("auto", "fp32", "bf16")), "auto"),  # autocast; auto: bf16 on CUDA with bf16
})


# --- localization (grizal/localization.py LOCALIZATION_DEFAULTS, localization_config) ----------------------

LOCALIZATION = Section({
    "thresholds": Field(ListOf(Number(min=0, max=1, min_open=True, max_open=True), min_len=1, scalar_ok=True),
                        [0.3, 0.4, 0.5, 0.6, 0.7]),
    "merge_gap": Field(Number(min=0), 0.0),
    "min_length": Field(Number(min=0), 0.0),
    "score": Field(Choice(("mean", "contrast", "max")), "contrast"),
    "context": Field(Number(min=0), 0.25),
    "nms": Field(Choice(("soft", "hard", "none")), "soft"),
    "nms_sigma": Field(Number(min=0, min_open=True), 0.5),
    "nms_iou": Field(Number(min=0, max=1), 0.5),
    "min_score": Field(Number(min=0), 0.001),
    "max_segments": Field(Int(min=1), 100),
    "cross_class": Field(Choice(("none", "geometric")), "none"),
})


# --- evaluate (pipeline/modelling/scoring.py thresholds_from_params; the evaluate stage) -------------------


def _tiou_key(value: float) -> str:
    return f"{value:g}"  # scoring.threshold_key: the JSON key a threshold is reported under


TIOUS = ListOf(Number(min=0, max=1, min_open=True), min_len=1, unique=_tiou_key)

EVALUATE = Section({
    "tious": Field(TIOUS, REQUIRED),
    "report_tious": Field(Maybe(TIOUS)),  # null or absent: the tious
    "n_plots": Field(Int(min=0), 6),
    "device": Field(DEVICE, "auto"),
})


# --- results (pipeline/modelling/variants.py BUILT_IN, pipeline/modelling/grid.py grid_jobs, run_grid) -------------

VARIANTS = ("GRIZAL", "w/o images", "w/o texts", "w/o flow", "w/o Fourier", "w/o Fourier and OF", "supervised only",
            "self-supervised only", "k=1", "k=2", "k=3", "k=4", "k=8", "N=1", "N=3", "N=5", "N=7", "N=9")
VARIANT_KEYS = ("model", "loss", "train", "localization", "features")


@dataclass
class VariantsKind(Kind):
    """results.variants: a list of built-in names, or a mapping name -> null (the built-in of that name) or
    section overrides (model, loss, train, localization) and an optional `features` folder."""

    names = ListOf(Choice(VARIANTS), min_len=1, unique=lambda v: v)
    expected = f"{names.expected}, or a mapping name -> null or overrides ({', '.join(VARIANT_KEYS)})"

    def check(self, value: Any, key: str, params: dict[str, Any]) -> Any:
        if isinstance(value, list | tuple):
            return self.names.check(value, key, params)
        if not isinstance(value, dict) or not value:
            raise self.fail(value, key)
        for name, spec in value.items():
            where = f"{key}.{name}"
            if spec is None:
                if name not in VARIANTS:
                    raise Invalid(where, f"null means the built-in variant of that name, and there is none "
                                         f"(built in: {', '.join(VARIANTS)})")
                continue
            if not isinstance(spec, dict):
                raise Invalid(where, f"expected null or a mapping of overrides ({', '.join(VARIANT_KEYS)}), "
                                     f"got {show(spec)}")
            for part, override in spec.items():
                if part not in VARIANT_KEYS:
                    close = _closest(part, VARIANT_KEYS) if isinstance(part, str) else None
                    hint = f" (did you mean '{close}'?)" if close else ""
                    raise Invalid(f"{where}.{part}", f"unknown key{hint}; extract and generate settings need the "
                                                     "variant's own feature stores (`features:` or dvc exp run -S)")
                if part == "features":
                    if not isinstance(override, str) or not override:
                        raise Invalid(f"{where}.features", f"expected a folder path, got {show(override)}")
                elif not isinstance(override, dict):
                    raise Invalid(f"{where}.{part}", f"expected a mapping, got {show(override)}")
        return value


def _results_splits(values: dict[str, Any], key: str, params: dict[str, Any]) -> None:
    prepare = params.get("prepare") if isinstance(params.get("prepare"), dict) else {}
    if "splits" not in values and prepare.get("protocol", "closed") == "open":
        raise Invalid(f"{key}.splits", f"missing (expected {RESULTS.fields['splits'].kind.expected}; "
                                       "prepare.protocol is open)")


RESULTS = Section({
    "splits": Field(ListOf(Int(min=0), unique=lambda s: s)),  # the open-set split ids, read when protocol is open
    "seeds": Field(ListOf(Int(min=0, max=2**32 - 1), min_len=1, unique=lambda s: s)),  # GRIZAL's; absent: train.seed
    "ablation_seeds": Field(ListOf(Int(min=0, max=2**32 - 1), min_len=1, unique=lambda s: s)),  # absent: seeds[0]
    "variants": Field(VariantsKind(), REQUIRED),
    "closed_set": Field(Bool(), True),
    "workers": Field(Int(min=1), 1),
}, checks=(_results_splits,))


SCHEMAS: dict[str, Section] = {
    "demo": DEMO,
    "pretrain": PRETRAIN,
    "prepare": PREPARE,
    "generate": GENERATE,
    "extract": EXTRACT,
    "model": MODEL,
    "loss": LOSS,
    "train": TRAIN,
    "localization": LOCALIZATION,
    "evaluate": EVALUATE,
    "results": RESULTS,
}
# Sections the code reads with `.get(name, {})`: absent (or empty) means all defaults.
OPTIONAL_SECTIONS = {"loss"}


def validate_section(params: dict[str, Any], name: str, where: str | os.PathLike | None,
                     fill_defaults: bool = True) -> dict[str, Any]:
    """The section ``name`` of ``params`` (read from ``where``) checked against its schema, with the defaults of
    the keys not given filled in (``fill_defaults=False``: only the keys given); the first problem is a UserError
    naming ``where``, the dotted key, the value and what is expected."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema for section '{name}' (known: {', '.join(SCHEMAS)})")
    schema = SCHEMAS[name]
    value = params.get(name)
    if value is None and name in OPTIONAL_SECTIONS:
        value = {}
    if name not in params and value is None:
        close = _closest(name, [k for k in params if isinstance(k, str)])
        raise UserError(where, f"missing section '{name}'" + (f" (did you mean '{close}'?)" if close else ""))
    try:
        return schema.check(value, name, params, fill_defaults)
    except Invalid as err:
        raise UserError(where, _one_line(f"{err.key}: {err.problem}")) from None


def validate_params(params: dict[str, Any], names: Iterable[str], where: str | os.PathLike | None,
                    fill_defaults: bool = True) -> dict[str, Any]:
    """``params`` with each section in ``names`` checked (and filled in) by ``validate_section``."""
    out = dict(params)
    for name in names:
        out[name] = validate_section(params, name, where, fill_defaults)
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split("\n"))
