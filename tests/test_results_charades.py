"""The results grid on Charades-STA: its runs are scored per query and its table carries Table 3's columns
(R@1/R@5 at IoU 0.5/0.7, mIoU) instead of stopping on a detection-mAP table."""

from pipeline.common import load_params
from pipeline.data.charades import parse_charades_sta
from pipeline.modelling.grid import grounding_results_table, results_table, run_grid


def run(variant, seed, r1, miou):
    recall = {"R@1,IoU=0.5": r1, "R@1,IoU=0.7": r1 / 2, "R@5,IoU=0.5": 1.0, "R@5,IoU=0.7": 0.5}
    return {"protocol": "closed", "split": None, "variant": variant, "seed": seed,
            "grizal": {"recall": recall, "mIoU": miou, "counts": {"queries": 4}},
            "baseline_name_bg": {"scored": False, "reason": "undefined per query"},
            "baseline_priors": {"scored": False, "reason": "undefined per query"}}


def test_grounding_table_is_mean_and_std_over_seeds_per_variant():
    table = results_table({"tious": ["0.5"], "runs": [run("GRIZAL", 0, 0.5, 0.4), run("GRIZAL", 1, 0.7, 0.6),
                                                      run("w/o flow", 0, 0.25, 0.2)]})
    lines = table.splitlines()
    assert lines[0] == "| setting | method | R@1,IoU=0.5 | R@1,IoU=0.7 | R@5,IoU=0.5 | R@5,IoU=0.7 | mIoU | runs |"
    assert lines[2] == "| per query | GRIZAL | 60.0 ± 14.1 | 30.0 ± 7.1 | 100.0 ± 0.0 | 50.0 ± 0.0 | 50.0 ± 14.1 | 2 |"
    assert lines[3] == "| per query | w/o flow | 25.0 | 12.5 | 100.0 | 50.0 | 20.0 | 1 |"
    assert "CLIP" not in table and "baseline" not in table


def _charades_index(root, index):
    """The tiny world as Charades-STA files (its class names as the sentences), videos 3 and 5 the test ones."""
    rows = {"train": [], "test": []}
    for vid, video in index.videos.items():
        subset = "test" if vid in ("demo_test_003", "demo_train_005") else "train"
        rows[subset] += [f"{vid} {s.start:.2f} {s.end:.2f}##{s.label}." for s in video.segments]
    for subset, lines in rows.items():
        (root / f"sta_{subset}.txt").write_text("\n".join(lines) + "\n")
    (root / "lengths.csv").write_text("id,length\n" + "".join(f"{v},{e.duration}\n" for v, e in index.videos.items()))
    return parse_charades_sta({s: root / f"sta_{s}.txt" for s in rows}, [root / "lengths.csv"])


def test_results_grid_runs_charades_per_query(tiny_world, tmp_path):
    index = _charades_index(tmp_path, tiny_world["index"])
    values = load_params("params.yaml")
    values["prepare"] = {"dataset": "charades", "protocol": "closed"}
    values["model"] = {"width": 32, "heads": 2, "vle_layers": 1, "ofe_layers": 1, "ft_layers": 1, "k": 2}
    values["train"] = {**values["train"], "epochs": 1, "T": None, "device": "cpu"}
    values["results"] = {**values["results"], "variants": ["GRIZAL"], "seeds": [0], "workers": 1}
    logged = []
    grid = run_grid(values, index, tiny_world["features"], tmp_path / "results", log=logged.append)
    (only,) = grid["runs"]
    assert only["grizal"]["counts"]["queries"] > 0 and "mIoU" in only["grizal"]
    assert "R@1,IoU=0.5" in logged[-1] and "mIoU" in logged[-1]
    assert grounding_results_table(grid["runs"]) == results_table(grid)
    assert "| per query | GRIZAL |" in results_table(grid)
