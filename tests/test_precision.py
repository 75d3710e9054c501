"""Precision chosen by the hardware (grizal/precision.py): 'auto' is bf16 only where the device runs it natively,
fp32 elsewhere; an explicit bf16 on a CPU without native bf16 runs with a warning; what ran is recorded where the
settings are, and a store or checkpoint made in another precision is refused with a line that says what to do.
The CPU's capability is faked, so both kinds of CPU are covered on any machine."""

import pytest
import torch

from grizal import precision as prec
from grizal.precision import PrecisionError, emulated_bf16_warning, resolve_precision
from pipeline.common import UserError

CPU = torch.device("cpu")


@pytest.fixture
def avx2_cpu(monkeypatch):
    """A CPU like an AMD Zen 2 or an Intel laptop: AVX2 kernels, no native bf16."""
    monkeypatch.setattr(prec, "cpu_native_bf16", lambda: False)
    monkeypatch.setattr(prec, "bf16_slowdown", lambda: 86.0)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU like Sapphire Rapids or Zen 4: AVX-512 with AVX512-BF16 (or AMX)."""
    monkeypatch.setattr(prec, "cpu_native_bf16", lambda: True)


def test_auto_is_fp32_on_a_cpu_without_native_bf16(avx2_cpu):
    assert resolve_precision("auto", CPU) == "fp32"


def test_auto_is_bf16_on_a_cpu_with_native_bf16(bf16_cpu):
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("auto", CPU, cpu_bf16=False) == "fp32"  # training: measured slower in bf16 on CPUs


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_cuda_follows_the_gpus_bf16_support(monkeypatch, native):
    monkeypatch.setattr(prec, "cuda_native_bf16", lambda device: native)
    assert resolve_precision("auto", torch.device("cuda")) == ("bf16" if native else "fp32")


def test_explicit_values_are_kept_and_fp16_is_never_on_a_cpu(avx2_cpu):
    assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(PrecisionError, match="fp16 is for GPUs"):
        resolve_precision("fp16", CPU)
    with pytest.raises(PrecisionError, match="unknown precision 'fp64'"):
        resolve_precision("fp64", CPU)


def test_explicit_bf16_on_a_cpu_without_native_bf16_warns_with_the_measured_slowdown(avx2_cpu):
    line = emulated_bf16_warning("bf16", CPU, "extract.clip.precision")
    assert line is not None and "\n" not in line
    assert "emulated" in line and "86x slower" in line and "extract.clip.precision" in line


def test_no_warning_where_bf16_is_native_or_not_used(bf16_cpu):
    assert emulated_bf16_warning("bf16", CPU, "x") is None
    assert emulated_bf16_warning("fp32", CPU, "x") is None


@pytest.mark.parametrize(("capability", "avx512_bf16", "amx", "onednn", "native"), [
    ("AVX2", True, False, True, False),        # a capable CPU forced to AVX2 kernels (ATEN_CPU_CAPABILITY=avx2)
    ("AVX2", False, False, False, False),      # Zen 2, Intel client CPUs
    ("AVX512", False, False, True, False),     # Skylake-X / Ice Lake: AVX-512 without bf16 units
    ("AVX512", True, False, True, True),       # Zen 4, Cooper Lake
    ("AVX512", False, True, True, True),       # Sapphire Rapids (AMX)
    ("AVX512", True, False, False, False),     # oneDNN capped below AVX512-BF16 (ONEDNN_MAX_CPU_ISA)
])
def test_native_bf16_is_read_from_what_torch_dispatches(monkeypatch, capability, avx512_bf16, amx, onednn, native):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn, raising=False)
    prec.cpu_native_bf16.cache_clear()
    try:
        assert prec.cpu_native_bf16() is native
    finally:
        prec.cpu_native_bf16.cache_clear()


def test_the_matmul_rate_is_measured_per_dtype():
    assert prec.matmul_gflops(torch.float32, size=64, seconds=0.01) > 0


@pytest.mark.parametrize("fake", ["avx2_cpu", "bf16_cpu"])
def test_the_clip_encoder_records_the_precision_it_runs(request, fake):
    from grizal.encoders.clip import ClipSpec, load_clip

    request.getfixturevalue(fake)
    clip = load_clip(ClipSpec(model="grizal-tiny", precision="auto", device="cpu"))
    expected = "fp32" if fake == "avx2_cpu" else "bf16"
    assert clip.precision == expected and clip.describe()["precision"] == expected
    assert clip.model.visual.conv1.weight.dtype == (torch.float32 if expected == "fp32" else torch.bfloat16)


def test_raft_autocast_auto_resolves_per_cpu(avx2_cpu):
    from grizal.encoders.flow import resolve_autocast

    assert resolve_autocast("auto", CPU) == "none"
    assert resolve_autocast("bf16", CPU) == "bf16"


def test_the_run_says_once_what_auto_resolved_to(avx2_cpu, capsys):
    from pipeline.precision import announce

    announce.cache_clear()
    announce("extract.clip.precision", "auto", "fp32", CPU)
    announce("extract.clip.precision", "auto", "fp32", CPU)
    announce("train.precision", "bf16", "bf16", CPU)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("extract.clip.precision: auto -> fp32 on cpu (CPU ") and "no native bf16" in lines[0]
    assert sum("extract.clip.precision: auto" in line for line in lines) == 1
    assert lines[1].startswith("train.precision: bf16 on cpu") and lines[2].startswith("warning: train.precision")
    announce.cache_clear()


def _attrs(precision, auto):
    from pipeline.features.store import settings_sha256

    settings = {"kind": "rgb", "clip": {"model": "m", "precision": precision}}
    return {"kind": "rgb", "precision": precision, "precision_auto": auto, "settings": settings,
            "settings_sha256": settings_sha256(settings)}


def test_a_store_made_where_auto_resolved_otherwise_is_refused_not_mixed_or_replaced(tmp_path):
    from pipeline.features.store import VIDEOS, prepare_store

    store = tmp_path / "rgb.zarr"
    prepare_store(store, _attrs("bf16", True), VIDEOS, rebuild=True)
    with pytest.raises(UserError) as err:
        prepare_store(store, _attrs("fp32", True), VIDEOS, rebuild=True)
    message = str(err.value)
    assert "clip.precision: 'bf16' -> 'fp32'" in message or "bf16" in message
    assert "set extract.clip.precision" in message and "\n" not in message
    assert (store / "zarr.json").is_file()  # nothing was deleted
    # an explicit precision change is a settings change like any other: the DVC stage rebuilds the store
    prepare_store(store, _attrs("fp32", False), VIDEOS, rebuild=True)


def test_a_checkpoint_trained_in_another_precision_is_refused_with_what_to_do(tiny_world, tmp_path, bf16_cpu):
    from pipeline.modelling.fit import TrainConfig, train

    def run(precision):
        cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", precision=precision)
        return train(tiny_world["index"], tiny_world["split"], tiny_world["features"], tiny_world["model"], {},
                     cfg, tmp_path, progress=False, log=lambda *_: None)

    from pipeline.modelling.checkpoint import load_model, load_resume

    model = run("bf16")
    assert load_model(model)[1]["precision"] == "bf16" and load_resume(tmp_path / "checkpoint.pt")["precision"] \
        == "bf16"
    with pytest.raises(UserError, match=r"trained in bf16 .* set train.precision: bf16 to resume it"):
        run("auto")  # auto is fp32 on every CPU
