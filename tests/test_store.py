"""The Zarr feature stores: writing, the completion flag, settings changes, bulk reading, checks, priors."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from grizal.encoders.priors import PRIOR_ARRAYS
from grizal.temporal import resample
from pipeline.common import UserError
from pipeline.features.store import (
    SCHEMA_VERSION,
    FeatureStoreWriter,
    PriorsStoreWriter,
    Shard,
    check_feature_store,
    check_priors_store,
    open_store,
    prepare_store,
    read_failures,
    read_priors,
    safe_key,
    settings_sha256,
)


def attrs(dim=4, **settings):
    settings = {"kind": "rgb", "clip": {"model": "m", "weights": "w"}, **settings}
    return {"kind": "rgb", "encoder": "m (w)", "weights_sha256": "abc", "sample_fps": 5.0, "dim": dim, "T": 100,
            "settings": settings, "settings_sha256": settings_sha256(settings)}


def video(n, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype(np.float32), np.arange(n) * 0.2 + 0.05


def test_write_and_bulk_read(tmp_path):
    writer = FeatureStoreWriter(tmp_path / "rgb.zarr", attrs())
    data = {f"v{i}": video(3 + i, seed=i) for i in range(5)}
    odd = "folder/clip #1 (é)"
    data[odd] = video(2, seed=9)
    for vid, (f, t) in data.items():
        writer.write_video(vid, f, t, {"duration": 10.0, "source": f"{vid}.mp4"})
    store = open_store(tmp_path / "rgb.zarr")
    assert store.attrs["schema_version"] == SCHEMA_VERSION and store.attrs["T"] == 100 and store.dim == 4
    assert store.complete_ids() == sorted(data)
    got = store.read_videos(list(data))
    for vid, (f, t) in data.items():
        assert np.array_equal(got[vid][0], f) and got[vid][0].dtype == np.float32
        assert np.array_equal(got[vid][1], t) and got[vid][1].dtype == np.float64
    assert store.video_attrs()[odd]["source"] == f"{odd}.mp4"
    resampled = store.read_resampled(["v0", "v1"], T=7, durations={"v1": 2.0})
    assert resampled.shape == (2, 7, 4)
    assert np.allclose(resampled[1], resample(*data["v1"], 2.0, 7))
    assert np.allclose(resampled[0], resample(*data["v0"], 10.0, 7))  # stored duration


def test_safe_keys_are_distinct_and_plain_ids_kept():
    assert safe_key("video_test_0000004") == "video_test_0000004"
    assert safe_key("v_-abc.D3") == "v_-abc.D3"
    weird = ["a/b", "a_b~x", "a b", "__a", "", "a\\b", "é"]
    keys = [safe_key(w) for w in weird]
    assert len(set(keys)) == len(keys)
    assert all("/" not in k and not k.startswith("_") and k for k in keys)


HOSTILE = ["zarr.json", "ZARR.JSON", ".zgroup", ".zattrs", ".zarray", "c", "C", "videos", "classes", ".", "..",
           "../escape", "a/b", "a/../../b", "\\x\\y", ".hidden", "expected_ids.json", "failures.jsonl",
           "failures.shard-0-of-2.jsonl", ".rgb.zarr.lock", "con", "NUL.mp4", "ends.", "x" * 300, "é" * 80, "",
           "~", "plain~tilde", "a\nb", "video_test_0000004", "v_-abc.D3"]


@pytest.mark.parametrize("kind", ["videos", "priors"])
def test_hostile_names_stay_inside_their_own_folders(tmp_path, kind):
    """Every name goes through the real writer and reader: no key is zarr metadata, the store's own files or a
    path out of its folder, and each name reads back its own arrays."""
    keys = [safe_key(name) for name in HOSTILE]
    assert len(set(keys)) == len(keys) and len({k.casefold() for k in keys}) == len(keys)
    assert all(k and "/" not in k and "\\" not in k and not k.startswith(".") and len(k) <= 128 for k in keys)
    assert safe_key("video_test_0000004") == "video_test_0000004" and safe_key("Clip_3") == "Clip_3"
    store = tmp_path / "store" / f"{kind}.zarr"
    if kind == "videos":
        writer = FeatureStoreWriter(store, attrs())
        data = {name: video(2 + i % 3, seed=i) for i, name in enumerate(HOSTILE)}
        writer.set_expected(data)
        for name, (f, t) in data.items():
            writer.write_video(name, f, t, {"duration": 10.0})
        got = open_store(store).read_videos(HOSTILE)
        assert all(np.array_equal(got[name][0], data[name][0]) for name in HOSTILE)
        assert sorted(open_store(store).complete_ids()) == sorted(HOSTILE)
        assert check_feature_store(store).ok(0.0)
    else:
        settings = {"kind": "priors", "clip": {"model": "m"}}
        writer = PriorsStoreWriter(store, {"kind": "priors", "dim": 4, "k": 2, "settings": settings,
                                           "settings_sha256": settings_sha256(settings)})
        data = {name: prior_arrays(seed=i) for i, name in enumerate(HOSTILE)}
        for name, arrays in data.items():
            writer.write_class(name, arrays, "h")
        writer.set_classes(HOSTILE)
        got = read_priors(store, HOSTILE)
        assert all(np.array_equal(got[name]["joint"], data[name]["joint"]) for name in HOSTILE)
        assert check_priors_store(store).ok(0.0)
    outside = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert outside == [f".{kind}.zarr.lock", f"{kind}.zarr"]  # nothing escaped the store
    assert json.loads((store / "zarr.json").read_text())["node_type"] == "group"


def test_a_key_taken_by_another_id_is_never_overwritten(tmp_path):
    """What a case-insensitive file system shows when 'CLIP' is written after 'Clip': the folder exists and
    belongs to the other id. The writer refuses (extract records it as that video's failure) instead of
    deleting the other video."""
    writer = FeatureStoreWriter(tmp_path / "rgb.zarr", attrs())
    writer.write_video("Clip", *video(3), {})
    writer.videos["Clip"].attrs.update({"video_id": "CLIP"})  # as if CLIP's folder were Clip's
    with pytest.raises(ValueError, match="store key 'Clip' is taken by 'CLIP'"):
        writer.write_video("Clip", *video(3), {})


def test_incomplete_video_is_never_read(tmp_path):
    writer = FeatureStoreWriter(tmp_path / "rgb.zarr", attrs())
    writer.write_video("done", *video(3), {})
    writer.write_video("half", *video(3), {})
    writer.videos["half"].attrs.update({"complete": False})  # as if killed before the flag was set
    store = open_store(tmp_path / "rgb.zarr")
    assert store.complete_ids() == ["done"]
    with pytest.raises(UserError, match="not completely extracted"):
        store.read_videos(["done", "half"])
    with pytest.raises(UserError, match="no features for 1 video"):
        store.read_videos(["nope"])
    # A rerun overwrites the leftover group.
    writer.close()
    again = FeatureStoreWriter(tmp_path / "rgb.zarr", attrs())
    assert again.complete_ids() == {"done"}
    f, t = video(5, seed=3)
    again.write_video("half", f, t, {})
    assert np.array_equal(open_store(tmp_path / "rgb.zarr").read_videos(["half"])["half"][0], f)


def test_writer_refuses_bad_arrays(tmp_path):
    writer = FeatureStoreWriter(tmp_path / "rgb.zarr", attrs())
    f, t = video(3)
    with pytest.raises(ValueError, match="non-finite"):
        writer.write_video("a", np.full((3, 4), np.nan, np.float32), t, {})
    with pytest.raises(ValueError, match="shape"):
        writer.write_video("a", f[:, :3], t, {})
    with pytest.raises(ValueError, match="increasing"):
        writer.write_video("a", f, t[::-1], {})
    assert open_store(tmp_path / "rgb.zarr").complete_ids() == []


def test_settings_change_rebuilds_or_refuses(tmp_path):
    path = tmp_path / "rgb.zarr"
    FeatureStoreWriter(path, attrs()).write_video("a", *video(3), {})
    FeatureStoreWriter(path, {**attrs(), "T": 256})  # T is not a feature setting: kept, attribute refreshed
    assert open_store(path).complete_ids() == ["a"] and open_store(path).attrs["T"] == 256
    changed = attrs(frames={"sample_fps": 2.0})
    with pytest.raises(UserError, match="--rebuild"):
        FeatureStoreWriter(path, changed, rebuild=False)
    with pytest.raises(UserError, match="sharded"):
        FeatureStoreWriter(path, changed, rebuild=True, shard=Shard(0, 2))
    FeatureStoreWriter(path, changed, rebuild=True)
    assert open_store(path).complete_ids() == []
    # no leftovers beside the store but its writer locks (empty files the OS unlocks when a writer ends)
    assert not [p for p in tmp_path.glob(".rgb.zarr.*") if p.suffix != ".lock"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.txt").write_text("mine")
    with pytest.raises(UserError, match="not a grizal store"):
        FeatureStoreWriter(tmp_path / "other", attrs())
    with pytest.raises(UserError, match="not 'flow'"):
        FeatureStoreWriter(path, {**changed, "kind": "flow"})


def test_concurrent_creation_is_safe(tmp_path):
    # Shards start together: each builds the empty store aside and renames it into place; one rename wins.
    def create(_):
        prepare_store(tmp_path / "rgb.zarr", attrs(), "videos", rebuild=False, shard=Shard(0, 4))
        return "ok"

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(create, range(4))) == ["ok"] * 4
    assert open_store(tmp_path / "rgb.zarr").complete_ids() == []
    assert [p.name for p in tmp_path.iterdir()] == ["rgb.zarr"]


def test_shards_partition_ids():
    ids = [f"video_{i}" for i in range(200)]
    costs = {v: float(i % 17 + 1) if i % 5 else None for i, v in enumerate(ids)}
    shards = [Shard(i, 3).weighted(costs) for i in range(3)]
    owners = [[s for s in shards if v in s.select(ids)] for v in ids]
    assert all(len(o) == 1 for o in owners)
    assert min(len(s.select(ids)) for s in shards) > 40
    assert Shard(0, 1).select(ids) == sorted(ids)
    assert Shard.parse("1/3") == Shard(1, 3) and Shard.parse(None) == Shard()
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(UserError):
            Shard.parse(bad)


def test_check_and_failures(tmp_path):
    path = tmp_path / "rgb.zarr"
    writer = FeatureStoreWriter(path, attrs())
    writer.set_expected(["a", "b", "c", "d"])
    for vid in ("a", "b"):
        writer.write_video(vid, *video(3), {})
    writer.failures.add("c", "c.mp4", "empty file (0 bytes)")
    report = check_feature_store(path)
    assert report.expected == ["a", "b", "c", "d"] and report.missing == ["d"]
    assert report.failed == {"c": "empty file (0 bytes)"} and not report.ok(1.0)
    assert read_failures(path)["c"]["path"] == "c.mp4"
    assert json.loads((path / "failures.jsonl").read_text().splitlines()[0])["reason"] == "empty file (0 bytes)"
    writer.write_video("d", *video(3), {})
    assert check_feature_store(path).ok(0.25) and not check_feature_store(path).ok(0.2)
    shutil.rmtree(path / "videos" / "b" / "features" / "c")  # a damaged store: check and readers must say so
    report = check_feature_store(path)
    assert report.invalid["b"] == "damaged: chunk features/c/0/0 is missing" and not report.ok(1.0)
    with pytest.raises(UserError, match="1 video.s. damaged, e.g. b"):
        open_store(path).read_videos(["a", "b"])


def test_reading_through_zarr_when_the_layout_is_not_declared(tmp_path):
    path = tmp_path / "rgb.zarr"
    writer = FeatureStoreWriter(path, attrs())
    data = {v: video(4, seed=i) for i, v in enumerate("ab")}
    for v, (f, t) in data.items():
        writer.write_video(v, f, t, {})
    writer.root.attrs.update({"chunk_layout": None})  # e.g. a store written by another tool
    got = open_store(path).read_videos(["a", "b"])
    assert all(np.array_equal(got[v][0], data[v][0]) for v in data)
    shutil.rmtree(path / "videos" / "b" / "features" / "c")
    # Through zarr an unwritten chunk would be the fill value: the chunk count says it is missing instead.
    assert check_feature_store(path).invalid["b"] == "damaged: features: 1 of 1 chunk(s) missing"


def prior_arrays(k=2, n_text=3, n_image=5, e=4, seed=0):
    rng = np.random.default_rng(seed)
    s = n_text + n_image
    return {
        "joint": rng.normal(size=(k, s, e)).astype(np.float32),
        "joint_mask": np.ones((k, s), bool),
        "token_type": np.array([[0] * n_text + [1] * n_image] * k, np.int8),
        "name_tokens": rng.normal(size=(n_text, e)).astype(np.float32),
        "name_mask": np.ones(n_text, bool),
        "name_embedding": rng.normal(size=e).astype(np.float32),
        "text_embedding": rng.normal(size=(k, e)).astype(np.float32),
        "image_embedding": rng.normal(size=(k, e)).astype(np.float32),
    }


def test_priors_store(tmp_path):
    path = tmp_path / "priors.zarr"
    settings = {"kind": "priors", "clip": {"model": "m"}}
    root_attrs = {"kind": "priors", "dim": 4, "k": 2, "settings": settings,
                  "settings_sha256": settings_sha256(settings)}
    writer = PriorsStoreWriter(path, root_attrs)
    classes = {"circle rises": prior_arrays(seed=1), "high/jump": prior_arrays(n_text=6, seed=2)}
    for name, arrays in classes.items():
        assert not writer.is_current(name, "h")
        writer.write_class(name, arrays, "h")
        assert writer.is_current(name, "h") and not writer.is_current(name, "other")
    writer.set_classes(list(classes))
    got = read_priors(path, ["high/jump", "circle rises"])
    assert list(got) == ["high/jump", "circle rises"]
    for name, arrays in classes.items():
        for key in PRIOR_ARRAYS:
            assert np.array_equal(got[name][key], arrays[key]) and got[name][key].dtype == arrays[key].dtype
    assert check_priors_store(path).ok(0.0)
    with pytest.raises(UserError, match="no priors for 1 class"):
        read_priors(path, ["circle rises", "falls"])
    with pytest.raises(UserError, match="not a grizal rgb/flow store"):
        open_store(path)
    with pytest.raises(UserError, match="not a feature store"):
        read_priors(tmp_path / "nothing.zarr", ["circle rises"])


def _two_class_priors(path, settings=None):
    settings = settings or {"kind": "priors", "clip": {"model": "m"}}
    writer = PriorsStoreWriter(path, {"kind": "priors", "dim": 4, "k": 2, "settings": settings,
                                      "settings_sha256": settings_sha256(settings)})
    classes = {"rise": prior_arrays(seed=1), "fall": prior_arrays(seed=2)}
    for name, arrays in classes.items():
        writer.write_class(name, arrays, "h")
    writer.set_classes(list(classes))
    writer.lock.release()
    return classes


def test_prior_tensors_carry_the_pooled_sentence_and_image_embeddings(tmp_path):
    from pipeline.features.inputs import FeatureSet

    classes = _two_class_priors(tmp_path / "priors.zarr")
    priors = FeatureSet(tmp_path).priors(["fall", "rise"])
    for key in ("name_embedding", "text_embedding", "image_embedding"):
        assert np.array_equal(getattr(priors, key).numpy(), np.stack([classes["fall"][key], classes["rise"][key]]))
    assert priors.image_embedding.shape == (2, 2, 4)


def test_a_priors_store_made_before_image_embedding_is_named_and_rebuilt(tmp_path, capsys):
    from pipeline.features.priors import PriorEncoder, priors_store_attrs

    described = {"model": "m", "weights": "w", "weights_sha256": "abc", "dim": 4, "precision": "fp32"}
    attrs = priors_store_attrs(PriorEncoder(described, lambda: None), 2, "a video of a {}", "concat")
    assert attrs["settings"]["arrays"] == list(PRIOR_ARRAYS) and PRIOR_ARRAYS[-1] == "image_embedding"
    path = tmp_path / "priors.zarr"
    _two_class_priors(path, {key: v for key, v in attrs["settings"].items() if key != "arrays"})
    for group in (path / "classes").iterdir():
        if group.is_dir():
            shutil.rmtree(group / "image_embedding")  # as an older grizal wrote it
    fix = r"holds no image_embedding \(made by an older grizal\); rerun the priors stage: dvc repro extract_priors"
    with pytest.raises(UserError, match=fix) as read:
        read_priors(path, ["rise", "fall"])
    assert read.value.where == str(path) and "\n" not in str(read.value)
    with pytest.raises(UserError, match=fix):
        check_priors_store(path)
    # the priors stage's settings list the arrays: the older store's lack them, so the next run rebuilds it
    writer = PriorsStoreWriter(path, attrs)
    assert f"settings changed (arrays: None -> {list(PRIOR_ARRAYS)!r}); rebuilding" in capsys.readouterr().out
    assert not writer.is_current("rise", "h") and not any(p.is_dir() for p in (path / "classes").iterdir())
