"""The results grid's variants: named changes of the run settings, built in or declared in params.

`results.variants` is either a list of names (the built-in variants below, as the shipped params have it) or a
mapping from a row name to its overrides:

    results:
      variants:
        GRIZAL: {}
        w/o images: null                       # null: the built-in variant of that name
        k=1: {model: {k: 1}}
        supervised only: {loss: {objective: supervised}}
        N=3: {model: {vle_layers: 3}}
        gafnet unit: {features: cache/features-gafnet}

Overrides are section overrides, merged key by key into the run's `model`, `loss`, `train` and `localization`
sections. Everything those sections hold changes by the grid alone. What the frozen features decide (the joint
unit, the frame encoder, the flow method, the generators, k stored, sentence length) needs other feature stores:
`features:` names a folder holding that variant's rgb.zarr, flow.zarr and priors.zarr (made by the extract stage
with `extract.out` pointing there), or the variant runs as a DVC experiment (`dvc exp run -S ...`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common import UserError

OVERRIDABLE = ("model", "loss", "train", "localization")
REFERENCE = "GRIZAL"  # the full model; the closed-set run and the training-free baseline come with it

# The paper's ablations (Tables 1 and 4) that are a change of the run settings, by their row names.
BUILT_IN: dict[str, dict[str, Any]] = {
    REFERENCE: {},
    "w/o images": {"model": {"use_images": False}},
    "w/o texts": {"model": {"use_texts": False}},
    "w/o flow": {"model": {"use_flow": False}},
    "w/o Fourier": {"model": {"use_fourier": False}},
    "w/o Fourier and OF": {"model": {"use_fourier": False, "use_flow": False}},  # Table 4(a)
    "supervised only": {"loss": {"objective": "supervised"}},  # Table 4(d)
    "self-supervised only": {"loss": {"objective": "self_supervised"}},
    "w/o cosine": {"loss": {"cosine": 0.0}},  # does the cosine term teach anything? (benchmarks.loss_gradients)
    **{f"k={k}": {"model": {"k": k}} for k in (1, 2, 3, 4, 8)},  # Table 4(c): the store must hold max k pairs
    **{f"N={n}": {"model": {"vle_layers": n}} for n in (1, 3, 5, 7, 9)},  # Table 6: VLE depth
}


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    features: str | None = None  # another feature folder (extract-level variants), else the grid's

    def settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with this variant's section overrides merged in (a deep copy; values are left as they are)."""
        out = copy.deepcopy(values)
        for name, override in self.overrides.items():
            out[name] = _merge(out.get(name) or {}, override)
        return out

    def features_dir(self, default: Path) -> Path:
        return Path(self.features) if self.features else default

    def record(self) -> dict[str, Any]:
        """What identifies the variant in a run's key."""
        return {"overrides": self.overrides, "features": self.features}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _declared(name: str, spec: Any, where: Any) -> Variant:
    if spec is None:
        if name not in BUILT_IN:
            raise UserError(where, f"results.variants.{name}: null means the built-in variant of that name, and "
                                   f"there is none (built in: {', '.join(BUILT_IN)})")
        return Variant(name, copy.deepcopy(BUILT_IN[name]))
    if not isinstance(spec, dict):
        raise UserError(where, f"results.variants.{name}: expected a mapping of section overrides "
                               f"({', '.join(OVERRIDABLE)}, features), got {spec!r}")
    unknown = sorted(set(spec) - {*OVERRIDABLE, "features"})
    if unknown:
        hint = (" (extract and generate settings need their own feature stores: give the variant a `features:` "
                "folder, or run it as `dvc exp run -S ...`)") if unknown[0] in ("extract", "generate") else ""
        raise UserError(where, f"results.variants.{name}: unknown key '{unknown[0]}' (known: "
                               f"{', '.join(OVERRIDABLE)}, features){hint}")
    for section_name in OVERRIDABLE:
        if section_name in spec and not isinstance(spec[section_name], dict):
            raise UserError(where, f"results.variants.{name}.{section_name}: expected a mapping, "
                                   f"got {spec[section_name]!r}")
    features = spec.get("features")
    if features is not None and (not isinstance(features, str) or not features):
        raise UserError(where, f"results.variants.{name}.features: expected a folder path, got {features!r}")
    overrides = {s: copy.deepcopy(spec[s]) for s in OVERRIDABLE if spec.get(s)}
    return Variant(name, overrides, features)


def resolve_variants(results_cfg: dict[str, Any], where: Any = "params.yaml") -> dict[str, Variant]:
    """The grid's variants by name, in the table's order (``results.variants``: a list of built-in names or a
    mapping name -> overrides). GRIZAL is always known: the closed-set run and the baseline use it."""
    declared = results_cfg.get("variants", [])
    if isinstance(declared, list):
        unknown = [name for name in declared if name not in BUILT_IN]
        if unknown:
            raise UserError(where, f"results.variants: unknown variant '{unknown[0]}' (known: "
                                   f"{', '.join(BUILT_IN)}; or declare it: results.variants as a mapping "
                                   "name -> overrides)")
        variants = {name: Variant(name, copy.deepcopy(BUILT_IN[name])) for name in declared}
    elif isinstance(declared, dict):
        variants = {str(name): _declared(str(name), spec, where) for name, spec in declared.items()}
    else:
        raise UserError(where, f"results.variants: expected a list of names or a mapping name -> overrides, "
                               f"got {declared!r}")
    slugs: dict[str, str] = {}
    for name in variants:
        slug = slug_of(name)
        if slug in slugs:
            raise UserError(where, f"results.variants: '{name}' and '{slugs[slug]}' would share the run folder "
                                   f"'{slug}'; rename one")
        slugs[slug] = name
    return variants


def variant_of(results_cfg: dict[str, Any], name: str, where: Any = "params.yaml") -> Variant:
    """One variant of the grid by name; GRIZAL (the closed-set run's) is known even when not listed."""
    variants = resolve_variants(results_cfg, where)
    if name in variants:
        return variants[name]
    if name == REFERENCE:
        return Variant(REFERENCE)
    raise UserError(where, f"results.variants: no variant '{name}'")


def slug_of(name: str) -> str:
    """A variant's run folder name."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
