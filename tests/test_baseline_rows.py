"""benchmarks/baseline_rows.py scores the training-free baselines exactly as the evaluate stage does."""

from benchmarks.baseline_rows import baseline_scores
from pipeline.features.inputs import FeatureSet
from pipeline.modelling.baselines import BASELINES
from pipeline.modelling.inference import evaluate_model


def test_the_benchmark_gives_the_evaluate_stages_baseline_figures(tiny_world, tmp_path):
    features = FeatureSet.open(tiny_world["features"])
    values = {"localization": {"thresholds": [0.2, 0.4]}, "evaluate": {"tious": [0.3, 0.5]}}
    figures = baseline_scores(values, tiny_world["index"], tiny_world["split"], features, features.T)
    outcome = evaluate_model(tiny_world["index"], tiny_world["split"], tiny_world["features"],
                             tiny_world["checkpoint"], values["localization"], [0.3, 0.5], n_plots=0, device="cpu")
    assert figures == {name: outcome["metrics"][name]["average_mAP"] for name in BASELINES}
    assert all(0.0 <= v <= 1.0 for v in figures.values()) and max(figures.values()) > 0.0, figures


def test_the_baselines_have_their_own_localization_keys_and_grizal_keeps_the_section(tiny_world, tmp_path):
    features = FeatureSet.open(tiny_world["features"])
    loc, own = {"thresholds": [0.2, 0.4]}, {"thresholds": [0.9], "cross_class": None}
    values = {"localization": loc, "evaluate": {"tious": [0.3, 0.5], "baseline_localization": own}}
    figures = baseline_scores(values, tiny_world["index"], tiny_world["split"], features, features.T)
    shared, apart = (evaluate_model(tiny_world["index"], tiny_world["split"], tiny_world["features"],
                                    tiny_world["checkpoint"], loc, [0.3, 0.5], n_plots=0, device="cpu",
                                    baseline_loc=overrides) for overrides in (None, own))
    assert figures == {name: apart["metrics"][name]["average_mAP"] for name in BASELINES}
    assert apart["metrics"]["grizal"] == shared["metrics"]["grizal"]
    assert any(apart["metrics"][name] != shared["metrics"][name] for name in BASELINES)
    alone = baseline_scores({**values, "evaluate": {"tious": [0.3, 0.5], "baseline_localization": {
        "thresholds": [0.9]}}, "localization": {"thresholds": [0.9]}}, tiny_world["index"], tiny_world["split"],
        features, features.T)
    assert figures == alone  # the keys given replace the section's, a null keeps it


def test_table_rows_are_the_readme_columns_mean_and_std_over_splits():
    from benchmarks.baseline_rows import table_rows

    def report(a: float, b: float) -> dict:
        return {"mAP": {"0.3": a, "0.5": b}, "average_mAP": (a + b) / 2, "average_tIoU": 0.1}

    reports = {"open-set (unseen)": [{name: report(0.5, 0.3) for name in BASELINES},
                                     {name: report(0.3, 0.1) for name in BASELINES}]}
    rows = table_rows(reports, ["0.3", "0.5"])
    assert rows == [f"| open-set (unseen) | {label} | 40.0 ± 14.1 | 20.0 ± 14.1 | 30.0 ± 14.1 | 10.0 ± 0.0 | 2 |"
                    for label in BASELINES.values()]
