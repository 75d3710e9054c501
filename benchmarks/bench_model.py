"""Training-step speed of the GRIZAL model on this machine's CPU, with demo-world shapes.

    .venv/bin/python -m benchmarks.bench_model                 # demo config (width 128)
    .venv/bin/python -m benchmarks.bench_model --width 512 --vle-layers 7 --dim 512   # paper scale

Prints ms per training step (forward, all four losses, backward, AdamW) and the implied time per demo epoch.
Priors are shaped like the grizal-tiny CLIP's: per pair a padded sentence (16 slots) then 65 image tokens.
"""

from __future__ import annotations

import argparse
import time

import torch

from grizal.losses import compute_losses
from grizal.model import build_model, parameter_summary


def synthetic_batch(batch: int, classes: int, length: int, dim: int, k: int, text_slots: int, image_tokens: int):
    gen = torch.Generator().manual_seed(0)
    slots = text_slots + image_tokens
    token_type = torch.zeros(classes, k, slots, dtype=torch.int8)
    token_type[..., text_slots:] = 1
    text_real = torch.randint(6, text_slots + 1, (classes, k, 1), generator=gen)
    joint_mask = (torch.arange(slots) < text_real) | (token_type == 1)
    priors = {
        "joint": torch.randn(classes, k, slots, dim, generator=gen),
        "joint_mask": joint_mask,
        "token_type": token_type,
        "name_tokens": torch.randn(classes, 8, dim, generator=gen),
        "name_mask": torch.arange(8).expand(classes, 8) < 5,
        "index": torch.randint(0, classes, (batch,), generator=gen),
    }
    rgb = torch.randn(batch, length, dim, generator=gen)
    flow = torch.randn(batch, length, dim, generator=gen)
    targets = (torch.rand(batch, length, generator=gen) > 0.7).float()
    return rgb, flow, priors, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vle-layers", type=int, default=7)
    parser.add_argument("--ofe-layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128, help="frozen feature size D = E")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=12, help="distinct classes per batch (VLE runs once each)")
    parser.add_argument("--T", type=int, default=128)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--samples-per-epoch", type=int, default=360, help="demo: 30 train videos x 12 seen classes")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = dict(rgb_dim=args.dim, flow_dim=args.dim, prior_dim=args.dim, width=args.width, heads=args.heads,
                  vle_layers=args.vle_layers, ofe_layers=args.ofe_layers, dropout=args.dropout, k=args.k)
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rgb, flow, priors, targets = synthetic_batch(args.batch, args.classes, args.T, args.dim, args.k, 16, 65)
    class_ids = priors["index"]

    def step() -> None:
        total, _ = compute_losses(model(rgb, flow, priors), targets, class_ids)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    epoch = per_step * args.samples_per_epoch / args.batch
    print(parameter_summary(model))
    print(f"config: {config}, batch={args.batch}, classes/batch={args.classes}, T={args.T}, "
          f"threads={torch.get_num_threads()}")
    print(f"train step: {per_step * 1000:.0f} ms/batch, {args.batch / per_step:.0f} samples/s, "
          f"{epoch:.1f} s per epoch of {args.samples_per_epoch} samples")


if __name__ == "__main__":
    main()
