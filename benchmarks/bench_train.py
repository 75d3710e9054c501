"""Where a GRIZAL training step spends its time, on this machine's CPU, with demo-world shapes.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_train                      # params.yaml's model
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_train --image-tokens patches --T 128   # the paper's form
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_train --autocast bf16
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_train --batch 64 --T 32 --compile   # torch.compile

Prints, per step: the share of the forward passes of the VLE (over the prior tokens of the batch's distinct
classes), the OFE, the mainstream (frame MLP, F-Transformer, head), the losses, the backward pass and the
optimiser; ms per step; and the step's FLOPs over its time as a fraction of this machine's own fp32 and bf16
matmul rates, measured in the same run (so a slower or busier machine reads the same fractions).
``--compile`` times the same step with the model's forward under ``torch.compile`` (Inductor: it needs a C++
compiler) against eager mode, after a first step that compiles it; the per-stage shares are then not measured
(the compiled graph runs no forward hooks).
Priors are shaped like the demo's stored ones: per pair a padded sentence (`--text-slots`) then 1 pooled image
token and `--patches` patch tokens, and `--name-slots` class-name tokens.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch
import yaml

from benchmarks.bench_model import synthetic_batch
from benchmarks.machine import matmul_gflops
from grizal.losses import compute_losses
from grizal.model import build_model, parameter_summary

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("vle", "ofe", "mainstream", "losses", "backward", "optimiser")


class StageClock:
    """Wall time per stage, the model's top-level blocks timed by forward hooks."""

    def __init__(self, model: torch.nn.Module):
        self.seconds: dict[str, float] = defaultdict(float)
        self._started: dict[str, float] = {}
        self._hooks = []
        groups = {"vle": ["vle"], "ofe": ["ofe"], "mainstream": ["rgb_mlp", "f_transformer", "head"]}
        for stage, names in groups.items():
            for name in names:
                module = getattr(model, name, None)
                if module is not None:
                    self._hooks += [module.register_forward_pre_hook(self._start(stage)),
                                    module.register_forward_hook(self._stop(stage))]

    def detach(self) -> None:
        """Remove the hooks (a compiled graph would break at every one)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def _start(self, stage):
        def hook(*_):
            self._started[stage] = time.perf_counter()
        return hook

    def _stop(self, stage):
        def hook(*_):
            self.seconds[stage] += time.perf_counter() - self._started.pop(stage)
        return hook

    def timed(self, stage: str, fn):
        start = time.perf_counter()
        out = fn()
        self.seconds[stage] += time.perf_counter() - start
        return out


def model_config(args) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    params.update(rgb_dim=args.dim, flow_dim=args.dim, prior_dim=args.dim)
    for key in ("width", "heads", "vle_layers", "ofe_layers", "ft_layers", "image_tokens", "dropout"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=None, help="default: params.yaml model.width")
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--vle-layers", dest="vle_layers", type=int, default=None)
    parser.add_argument("--ofe-layers", dest="ofe_layers", type=int, default=None)
    parser.add_argument("--ft-layers", dest="ft_layers", type=int, default=None)
    parser.add_argument("--image-tokens", dest="image_tokens", choices=["patches", "pooled"], default=None)
    parser.add_argument("--dim", type=int, default=128, help="frozen feature size D = E")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=12, help="distinct classes per batch (VLE runs once each)")
    parser.add_argument("--T", type=int, default=128)
    parser.add_argument("--text-slots", type=int, default=28)
    parser.add_argument("--patches", type=int, default=64)
    parser.add_argument("--name-slots", type=int, default=9)
    parser.add_argument("--autocast", choices=["none", "bf16"], default="none")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the step with the forward under torch.compile (and how long compiling took)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = model_config(args)
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    k = config.get("k", 4)
    rgb, flow, priors, targets = synthetic_batch(args.batch, args.classes, args.T, args.dim, k, args.text_slots,
                                                 1 + args.patches)
    if args.name_slots != 8:
        priors["name_tokens"] = torch.randn(args.classes, args.name_slots, args.dim)
        priors["name_mask"] = torch.ones(args.classes, args.name_slots, dtype=torch.bool)
    class_ids = priors["index"]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16")
    clock = StageClock(model)

    def step() -> None:
        with autocast:
            outputs = model(rgb, flow, priors)
        outputs = {key: value.float() for key, value in outputs.items()}
        total, _ = clock.timed("losses", lambda: compute_losses(outputs, targets, class_ids))
        optimizer.zero_grad(set_to_none=True)
        clock.timed("backward", total.backward)
        clock.timed("optimiser", optimizer.step)

    step()
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    clock.seconds.clear()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    fp32, bf16 = (matmul_gflops(name, size=512, seconds=0.5) for name in ("float32", "bfloat16"))
    measured = sum(clock.seconds.values())
    print(parameter_summary(model))
    print(f"model: {config}")
    print(f"batch={args.batch} classes/batch={args.classes} T={args.T} autocast={args.autocast} "
          f"threads={torch.get_num_threads()}")
    print("share of a step: " + ", ".join(f"{stage} {clock.seconds.get(stage, 0.0) / measured:.0%}"
                                          for stage in STAGES)
          + f" (other {max(0.0, 1 - measured / (per_step * args.steps)):.0%})")
    achieved = flops / per_step / 1e9
    print(f"train step: {per_step * 1000:.1f} ms, {flops / 1e9:.2f} GFLOP -> {achieved:.1f} GFLOP/s = "
          f"{achieved / fp32:.0%} of fp32 matmul ({fp32:.0f} GFLOP/s), {achieved / bf16:.0%} of bf16 matmul "
          f"({bf16:.0f} GFLOP/s)")
    if args.compile:
        clock.detach()
        compiled_step_time(model, step, args.steps)


def compiled_step_time(model: torch.nn.Module, step, steps: int) -> None:
    """The same step eager and with the model's forward compiled (no forward hooks left on the model): the
    compiled first step's seconds (compiling included), then the mean of ``steps`` each way."""

    def mean_step() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - start) / steps

    eager = mean_step()
    model.forward = torch.compile(model.forward)
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    compiled = mean_step()
    print(f"compiled: first step {first:.1f} s (compiling), then {compiled * 1000:.1f} ms a step against "
          f"{eager * 1000:.1f} eager (without the clock's hooks) = {eager / compiled:.2f}x")


if __name__ == "__main__":
    main()
