"""Reference rows of the demo world: detectors built from the world's own actor plans (``actors.json``), with no
learning, scored by the same localization and scorer as GRIZAL.

They bound what a cue alone is worth on a split: a method that scores below "the class's shape is visible" has
not learnt more than the look of the actor; one below "that shape is moving" has not learnt the direction.

- ``shape visible``: 1 while an actor of the class's shape is on screen (moving or still), else 0;
- ``shape moving``: 1 while an actor of that shape moves, in any direction;
- ``shape moving in its direction``: 1 while an actor of that shape moves in the class's direction (the ground
  truth itself, read from the plan: a check that localization and scoring lose nothing, about 100).

Curves are sampled at the snippet centres (``grizal.temporal.snippet_times``) with the run's T, so they pass
through the same localization settings (thresholds, cross-class weighting, NMS) as the model's curves.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common import UserError

DETECTORS = ("shape visible", "shape moving", "shape moving in its direction")


def load_actor_plans(path: Path) -> dict[str, Any]:
    """The ``videos`` mapping of a demo world's ``actors.json`` (``pipeline.data.demo.ACTORS_FILE``)."""
    from pipeline.data.demo import ACTORS_FORMAT

    try:
        plans = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(path, "not found: the demo_world stage writes it (rerun `dvc repro demo_world`)") from None
    except (OSError, ValueError) as err:
        raise UserError(path, f"unreadable actor plans: {err}") from None
    if not isinstance(plans, dict) or plans.get("format") != ACTORS_FORMAT or not isinstance(plans.get("videos"), dict):
        raise UserError(path, f"not a demo world actor plan of format {ACTORS_FORMAT} (rerun the demo_world stage)")
    return plans["videos"]


def _direction(velocity: list[float]) -> tuple[float, float] | None:
    norm = math.hypot(*velocity)
    return None if norm == 0 else (velocity[0] / norm, velocity[1] / norm)


def detector_curves(plan: dict[str, Any], classes: list[str], times: np.ndarray, detector: str) -> np.ndarray:
    """(C, T) 0/1 curve of ``detector`` for each demo class at the snippet centres ``times`` of one video."""
    from pipeline.data import demo_vocab

    if detector not in DETECTORS:
        raise ValueError(f"unknown reference detector {detector!r} (known: {', '.join(DETECTORS)})")
    curves = np.zeros((len(classes), len(times)), dtype=np.float32)
    for c, name in enumerate(classes):
        parsed = demo_vocab.parse_class(name)
        if parsed is None:
            raise ValueError(f"'{name}' is not a demo world class")
        shape, motion = parsed
        for actor in plan["actors"]:
            if actor["shape"] != shape:
                continue
            if detector == "shape visible":
                on = (times >= actor["appear"]) & (times <= actor["vanish"])
            else:
                direction = _direction(actor["velocity"])
                if direction is None:
                    continue
                wrong_way = not np.allclose(direction, demo_vocab.MOTIONS[motion])
                if detector == "shape moving in its direction" and wrong_way:
                    continue
                on = (times >= actor["start"]) & (times <= actor["end"])
            curves[c, on] = 1.0
    return curves


def reference_metrics(plans: dict[str, Any], ids: list[str], classes: list[str], scored: list[str], gt,
                      durations: dict[str, float], T: int, loc_cfg: dict[str, Any], tious,
                      where: str | os.PathLike = "actors.json") -> dict[str, dict[str, Any]]:
    """{detector: metrics} for the test videos ``ids``: curves of every evaluated class (``classes``, weighted
    across classes by the localization settings), the ``scored`` ones scored against ``gt``, exactly as a model's
    predictions are (``pipeline.modelling.inference.evaluate_model``)."""
    from grizal.temporal import snippet_times
    from pipeline.features.inputs import VideoTensors
    from pipeline.modelling.inference import curves_to_results, score
    from pipeline.modelling.scoring import metrics_json

    missing = [vid for vid in ids if vid not in plans]
    if missing:
        raise UserError(where, f"no actor plan for video {missing[0]} ({len(missing)} missing): the plans are of "
                               "another demo world (rerun the demo_world stage)")
    times = np.stack([snippet_times(durations[vid], T) for vid in ids]) if ids else np.zeros((0, T))
    videos = VideoTensors(ids=list(ids), rgb=None, flow=None, times=times,
                          durations=np.array([durations[vid] for vid in ids], dtype=np.float64))
    out = {}
    for detector in DETECTORS:
        curves = np.stack([detector_curves(plans[vid], classes, times[v], detector) for v, vid in enumerate(ids)])
        results = curves_to_results(curves, videos, classes, loc_cfg)
        out[detector] = metrics_json(score(results, gt, scored, tious))
    return out
