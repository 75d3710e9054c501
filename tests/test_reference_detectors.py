"""The demo world's actor plans and the reference detectors built from them; the table's paired differences."""

import json

import numpy as np
import pytest

from grizal.localization import localization_config
from grizal.temporal import snippet_times
from pipeline.common import UserError
from pipeline.data import demo_vocab
from pipeline.data.demo import ACTORS_FILE, DemoConfig, render_video, write_actor_plans
from pipeline.modelling.grid import paired_difference, results_table
from pipeline.modelling.reference import detector_curves, load_actor_plans, reference_metrics
from pipeline.modelling.scoring import load_ground_truth

CFG = DemoConfig(seed=7, min_duration=12.0, max_duration=16.0)


def test_the_plan_written_is_what_the_annotations_say(tmp_path):
    vid, entry, plan = render_video(tmp_path, CFG, "validation", 3)
    write_actor_plans(tmp_path / ACTORS_FILE, CFG, {vid: plan})
    plans = load_actor_plans(tmp_path / ACTORS_FILE)
    assert plans[vid]["duration"] == entry["duration"]
    movers = [a for a in plans[vid]["actors"] if a["label"] is not None]
    segments = sorted((a["segment"][0], a["segment"][1], a["label"]) for a in entry["annotations"])
    assert sorted((a["start"], a["end"], a["label"]) for a in movers) == segments
    for actor in plans[vid]["actors"]:
        assert actor["appear"] <= actor["start"] <= actor["end"] <= actor["vanish"]
        if actor["label"] is None:
            assert actor["velocity"] == [0.0, 0.0]
        else:
            shape, motion = demo_vocab.parse_class(actor["label"])
            assert actor["shape"] == shape
            direction = np.array(actor["velocity"]) / np.hypot(*actor["velocity"])
            assert np.allclose(direction, demo_vocab.MOTIONS[motion])
    assert all(w["shape"] in demo_vocab.DISTRACTOR_SHAPES for w in plans[vid]["wanderers"])


def _actor(shape, appear, start, end, vanish, velocity, label):
    return {"shape": shape, "color": [0, 0, 0], "radius": 10.0, "appear": appear, "start": start, "end": end,
            "vanish": vanish, "x0": 50.0, "y0": 50.0, "velocity": velocity, "label": label}


PLAN = {"duration": 10.0, "wanderers": [], "actors": [
    _actor("circle", 1.0, 2.0, 5.0, 6.0, [30.0, 0.0], "circle slides right"),  # still 1-2 and 5-6
    _actor("circle", 7.0, 7.0, 9.0, 9.0, [0.0, 0.0], None),  # idle
    _actor("square", 3.0, 4.0, 6.0, 8.0, [0.0, -20.0], "square rises"),
]}


def test_each_detector_fires_on_its_one_cue():
    times = snippet_times(10.0, 10)  # 0.5, 1.5, ..., 9.5
    classes = ["circle slides right", "circle rises", "square rises"]
    visible = detector_curves(PLAN, classes, times, "shape visible")
    moving = detector_curves(PLAN, classes, times, "shape moving")
    oracle = detector_curves(PLAN, classes, times, "shape moving in its direction")
    assert visible[0].tolist() == [0, 1, 1, 1, 1, 1, 0, 1, 1, 0]  # both circles, still or moving
    assert visible[0].tolist() == visible[1].tolist()  # the shape, whatever the class's motion
    assert moving[0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]  # 2.5-4.5: the moving circle only
    assert moving[1].tolist() == moving[0].tolist()
    assert oracle[0].tolist() == moving[0].tolist() and not oracle[1].any()  # nothing circle rises
    assert oracle[2].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown reference detector"):
        detector_curves(PLAN, classes, times, "colour")


def test_the_oracle_scores_full_marks_and_a_still_phase_costs_the_appearance_cue():
    classes = ["circle slides right", "circle rises", "square rises"]
    gt = load_ground_truth({"database": {"v": {"subset": "validation", "duration": 10.0, "annotations": [
        {"segment": [2.0, 5.0], "label": "circle slides right"}, {"segment": [4.0, 6.0], "label": "square rises"}]}}})
    tious = [0.3, 0.5, 0.7]
    metrics = reference_metrics({"v": PLAN}, ["v"], classes, ["circle slides right", "square rises"], gt,
                                {"v": 10.0}, 100, localization_config({}), tious)
    assert metrics["shape moving in its direction"]["average_mAP"] == pytest.approx(1.0)
    assert metrics["shape visible"]["average_mAP"] < metrics["shape moving"]["average_mAP"] <= 1.0
    with pytest.raises(UserError, match="no actor plan for video w"):
        reference_metrics({"v": PLAN}, ["w"], classes, classes, gt, {"w": 10.0}, 100, localization_config({}), tious)


def test_a_missing_or_foreign_plan_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="not found: the demo_world stage writes it"):
        load_actor_plans(tmp_path / ACTORS_FILE)
    (tmp_path / ACTORS_FILE).write_text(json.dumps({"videos": {}}))
    with pytest.raises(UserError, match="not a demo world actor plan of format"):
        load_actor_plans(tmp_path / ACTORS_FILE)
    (tmp_path / ACTORS_FILE).write_text("{")
    with pytest.raises(UserError, match="unreadable actor plans"):
        load_actor_plans(tmp_path / ACTORS_FILE)


def test_the_paired_difference_is_the_mean_with_its_t_interval():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027 -> half width 2.484
    assert paired_difference([1.0, 2.0, 3.0]) == "+2.0 [-0.5, +4.5]"
    assert paired_difference([-4.0]) == "-4.0 (1 pair)"
    assert paired_difference([]) == "n/a"


def _m(average):
    return {"mAP": {"0.5": average}, "average_mAP": average, "average_tIoU": 0.5}


def test_the_table_pairs_ablations_by_seed_and_seedless_rows_by_split():
    runs = [{"protocol": "open", "split": s, "variant": v, "seed": seed, "grizal": _m(a), "baseline_name_bg": _m(b),
             "baseline_priors": _m(b + 0.1)}
            for s, v, seed, a, b in [(0, "GRIZAL", 0, 0.40, 0.1), (0, "GRIZAL", 1, 0.60, 0.1),
                                     (1, "GRIZAL", 0, 0.20, 0.3), (1, "GRIZAL", 1, 0.30, 0.3),
                                     (0, "w/o flow", 0, 0.30, 0.0), (1, "w/o flow", 0, 0.25, 0.0)]]
    references = [{"protocol": "open", "split": s, "detector": "shape visible", "metrics": _m(a)}
                  for s, a in [(0, 0.70), (1, 0.45)]]
    table = results_table({"tious": ["0.5"], "runs": runs, "references": references})
    rows = {row.split(" | ")[1]: row.strip(" |").split(" | ") for row in table.splitlines()[2:]}
    assert list(rows) == ["GRIZAL", "CLIP, class name + background", "CLIP, priors prototype", "w/o flow",
                          "reference: shape visible"]
    assert rows["GRIZAL"][-1] == "—"
    # w/o flow pairs with seed 0: -10 and +5 points; t(0.975, 1) = 12.706 -> half width 12.706 * 10.61 / 1.414
    assert rows["w/o flow"][-1] == paired_difference([-10.0, 5.0]) == "-2.5 [-97.8, +92.8]"
    # seedless rows pair with GRIZAL's mean over seeds per split (50 and 25)
    assert rows["CLIP, class name + background"][-1] == paired_difference([-40.0, 5.0])
    assert rows["CLIP, priors prototype"][-1] == paired_difference([-30.0, 15.0])
    assert rows["reference: shape visible"][-1] == paired_difference([20.0, 20.0])
    assert (rows["reference: shape visible"][3], rows["reference: shape visible"][5]) == ("57.5 ± 17.7", "2")
