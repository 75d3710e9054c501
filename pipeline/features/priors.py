"""The joint prior embeddings of every class of priors.json into the priors store (extract priors, localize)."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from grizal.encoders.priors import JOINT_UNITS, encode_class_priors
from grizal.prior_arrays import PRIOR_ARRAYS
from pipeline.common import UserError, read_json
from pipeline.features.store import PRIORS_KIND, PriorsStoreWriter, check_priors_store, settings_sha256

if TYPE_CHECKING:  # PIL loads when images are read; the encoder is built by the caller
    from PIL import Image

    from grizal.encoders.clip import ClipEncoder


@dataclass
class PriorEncoder:
    """The CLIP encoder of a priors store: its description (what the store records, known without loading it)
    and the encoder itself, loaded on first use only, so a store whose classes are all current loads nothing."""

    described: dict[str, Any]
    load: Callable[[], ClipEncoder]
    precision_auto: bool = False  # the config said 'auto' (see features.store.prepare_store)

    @classmethod
    def of(cls, clip: ClipEncoder) -> PriorEncoder:
        return cls(clip.describe(), lambda: clip, clip.spec.precision == "auto")

    @functools.cached_property
    def clip(self) -> ClipEncoder:
        return self.load()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_priors_json(path: Path) -> tuple[int, dict[str, dict[str, list]]]:
    data = read_json(path)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise UserError(path, "expected {'k': K, 'classes': {name: {'texts': [...], 'images': [...]}}}")
    k = data.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UserError(path, f"'k' must be a whole number of pairs per class >= 1, got {_short(k)}")
    for name, entry in classes.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("texts"), list) or not entry["texts"]:
            raise UserError(path, f"class '{name}': 'texts' must be a non-empty list")
        if len(entry["texts"]) != k:
            raise UserError(path, f"class '{name}': has {len(entry['texts'])} sentence(s), k is {k} (every class "
                                  "needs k pairs); generate its priors again")
        bad = [t for t in entry["texts"] if not isinstance(t, str) or not t.strip()]
        if bad:
            raise UserError(path, f"class '{name}': every sentence must be non-empty text, got {_short(bad[0])}")
        if not isinstance(entry.get("images"), list) or len(entry["images"]) != len(entry["texts"]):
            raise UserError(path, f"class '{name}': needs as many 'images' as 'texts' ({len(entry['texts'])})")
        if not all(isinstance(p, str) and p for p in entry["images"]):
            raise UserError(path, f"class '{name}': every image must be a path relative to {path.parent}")
    return k, classes


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, int | float | str | bool | None) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _load_image(path: Path) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise UserError(path, "prior image not found") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(path, f"not a readable image ({err})") from None


def priors_store_attrs(encoder: PriorEncoder, k: int, template: str, joint_unit: str) -> dict[str, Any]:
    """The priors store's root attributes; its `settings` decide when the store is rebuilt (`arrays` too: a store
    made before an array was added is rebuilt by the next priors run)."""
    clip = encoder.described
    settings = {"kind": PRIORS_KIND, "clip": dict(clip), "name_template": template, "joint_unit": joint_unit,
                "arrays": list(PRIOR_ARRAYS)}
    return {"kind": PRIORS_KIND, "encoder": f"{clip['model']} ({clip['weights']})", "encoder_model": clip["model"],
            "encoder_weights": clip["weights"], "weights_sha256": clip["weights_sha256"], "dim": clip["dim"],
            "precision": clip["precision"], "precision_auto": encoder.precision_auto,
            "k": k, "name_template": template, "joint_unit": joint_unit, "settings": settings,
            "settings_sha256": settings_sha256(settings)}


def class_source_sha256(name: str, texts: list[str], image_paths: list[Path]) -> str:
    """What a class's stored priors were made from: a class is encoded again only when this changes."""
    return hashlib.sha256(json.dumps({"name": name, "texts": texts, "images": [_file_sha256(p) for p in image_paths]},
                                     sort_keys=True).encode()).hexdigest()


def run_priors(priors_json: Path, out: Path, encoder: PriorEncoder, template: str, *, joint_unit: str = "concat",
               rebuild: bool = True, keep_other_classes: bool = False) -> None:
    """Encode every class of priors.json into the priors store with the joint unit `joint_unit` (concat, gafnet
    or pooled; grizal.encoders.priors); classes whose inputs did not change are kept, and a store made with
    another unit or encoder is rebuilt. Groups of classes priors.json no longer names are deleted, unless
    `keep_other_classes` (localize's store is a cache of every action asked so far)."""
    if joint_unit not in JOINT_UNITS:
        raise UserError("extract.priors.joint_unit", f"unknown joint unit '{joint_unit}' (use one of "
                                                     f"{', '.join(JOINT_UNITS)})")
    k, classes = load_priors_json(priors_json)
    base = priors_json.parent
    writer = PriorsStoreWriter(out, priors_store_attrs(encoder, k, template, joint_unit), rebuild=rebuild)
    todo = 0
    for name in tqdm(sorted(classes), unit="class", file=sys.stderr, mininterval=2):
        entry = classes[name]
        image_paths = [base / p for p in entry["images"]]
        missing = [p for p in image_paths if not p.is_file()]
        if missing:
            raise UserError(missing[0], f"prior image of class '{name}' not found")
        source = class_source_sha256(name, entry["texts"], image_paths)
        if writer.is_current(name, source):
            continue
        todo += 1
        try:
            images = [_load_image(p) for p in image_paths]
            arrays = encode_class_priors(encoder.clip, name, entry["texts"], images, template, joint_unit)
        except ValueError as err:
            raise UserError(priors_json, str(err)) from None
        try:
            writer.write_class(name, arrays, source)
        except ValueError as err:  # e.g. an encoder output beyond the store's magnitude bound
            raise UserError(out, str(err)) from None
    writer.set_classes(list(classes))
    removed = [] if keep_other_classes else writer.remove_other_classes(list(classes))
    if removed:
        print(f"{out}: removed {len(removed)} class group(s) no longer in priors.json, e.g. '{removed[0]}'")
    report = check_priors_store(out, list(classes))
    print(f"{out}: {len(classes)} class(es), {todo} encoded, {len(classes) - todo} unchanged; "
          f"{len(report.complete)}/{len(report.expected)} complete")
    if not report.ok(0.0):
        raise SystemExit(f"error: {out}: priors incomplete: {report.missing[:3] or report.invalid}")
