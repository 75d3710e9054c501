"""What a `model.pt` was trained on, in one line, and whether its answer on a given video means anything.

The train stage records the data set, protocol and split (``trained_on``); the frame encoder comes from the
feature-store attributes every checkpoint holds. A checkpoint saved before ``trained_on`` existed is recognised
as the demo world's when all its training classes are demo-world classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# open_clip configs that ship with grizal: random weights (grizal-tiny) or the pretrain stage's demo CLIP.
DEMO_ENCODERS = ("grizal-tiny", "grizal-demo")
DEMO_VIDEO = re.compile(r"demo_(train|test)_\d+")  # the demo world's video ids (pipeline.data.demo.make_video)


@dataclass(frozen=True)
class CheckpointInfo:
    dataset: str | None  # None: not recorded and not recognisable
    dataset_source: str  # "recorded" or how it was inferred
    protocol: str | None
    split_id: int | None
    n_classes: int
    epochs: int | None
    frame_encoder: str
    encoder_model: str
    flow: str | None

    @property
    def demo_only(self) -> bool:
        """Trained on the synthetic demo world or with a demo encoder: it knows nothing of real video."""
        return self.dataset == "demo" or self.encoder_model in DEMO_ENCODERS

    def line(self, path: Path) -> str:
        data = self.dataset or "an unrecorded data set"
        if self.dataset and self.dataset_source != "recorded":
            data += f" ({self.dataset_source})"
        split = ", ".join(p for p in (self.protocol and f"protocol {self.protocol}",
                                      self.split_id is not None and f"split {self.split_id}") if p)
        details = "; ".join(p for p in (split, f"{self.n_classes} training classes",
                                        self.epochs and f"{self.epochs} epochs") if p)
        flow = f", flow {self.flow}" if self.flow else ""
        return f"checkpoint {path}: trained on {data} ({details}) with frame encoder {self.frame_encoder}{flow}"

    def mismatch_warning(self, video: Path) -> str | None:
        """One line when the video cannot be one the checkpoint knows anything about, else None."""
        if not self.demo_only or DEMO_VIDEO.fullmatch(video.stem):
            return None
        return (f"warning: {video.name} is not a demo-world video, and this checkpoint was trained on the synthetic "
                f"demo world (data set {self.dataset or 'unrecorded'}, frame encoder {self.encoder_model}): its "
                "curves and segments here are meaningless. Train on labelled videos like yours with a real CLIP "
                "(extract.clip, e.g. ViT-B-32 with local weights) and pass that model.pt as --checkpoint")


def checkpoint_info(state: dict[str, Any]) -> CheckpointInfo:
    from pipeline.data.demo_vocab import parse_class

    trained_on = state.get("trained_on") or {}
    classes = list(state.get("seen_classes") or [])
    dataset, source = trained_on.get("dataset"), "recorded"
    if dataset is None and classes and all(parse_class(c) for c in classes):
        dataset, source = "demo", "not recorded; all its classes are the demo world's"
    encoders = state.get("encoders") or {}
    rgb = encoders.get("rgb") or {}
    use_flow = bool((state.get("model_config") or {}).get("use_flow", True))
    flow = (encoders.get("flow") or {}).get("flow_method") if use_flow else None
    epochs = (state.get("train_config") or {}).get("epochs")
    return CheckpointInfo(dataset=dataset, dataset_source=source, protocol=trained_on.get("protocol"),
                          split_id=trained_on.get("split_id"), n_classes=len(classes),
                          epochs=int(epochs) if epochs else None,
                          frame_encoder=str(rgb.get("encoder", "unknown")),
                          encoder_model=str(rgb.get("encoder_model", "")), flow=flow)
