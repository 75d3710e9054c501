"""The diffusers image backend: Stable Diffusion, SDXL, PixArt-alpha, ... by model id or local folder.

Every image gets its own seeded generator (on the CPU, so the same seed gives the same pixels whatever the
device the pipeline runs on).
"""

from __future__ import annotations

import threading

from pipeline.priors.backends import ImageRequest, ImageResult
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import FatalBackendError, Refused, Usage
from pipeline.priors.torch_device import pick_device, pick_dtype


class DiffusersImageBackend:
    name = "diffusers"
    remote = False
    uses_prompt = True

    def __init__(self, cfg: GenerateConfig, pipeline=None):
        self.cfg = cfg
        self.model = cfg.resolved_image_model
        self._pipeline = pipeline
        self._lock = threading.Lock()

    def key_fields(self, request: ImageRequest) -> dict:
        return {"steps": self.cfg.diffusion_steps, "guidance_scale": self.cfg.guidance_scale,
                "resolution": self.cfg.diffusion_resolution, "negative_prompt": self.cfg.negative_prompt}

    def _load(self):
        with self._lock:
            if self._pipeline is None:
                from diffusers import DiffusionPipeline

                device = pick_device(self.cfg.device)
                try:
                    pipeline = DiffusionPipeline.from_pretrained(self.model, dtype=pick_dtype(device))
                except (OSError, ValueError) as err:
                    raise FatalBackendError("image_model", f"cannot load '{self.model}': "
                                            f"{str(err).strip().splitlines()[0]}") from None
                self._pipeline = pipeline.to(device)
            self._pipeline.set_progress_bar_config(disable=True)
        return self._pipeline

    def generate(self, request: ImageRequest) -> ImageResult:
        import torch

        pipeline = self._load()
        generator = torch.Generator("cpu").manual_seed(request.seed + request.attempt * 7919)
        kwargs = {"prompt": request.prompt, "num_inference_steps": self.cfg.diffusion_steps,
                  "guidance_scale": self.cfg.guidance_scale, "generator": generator, "output_type": "pil"}
        if self.cfg.negative_prompt:
            kwargs["negative_prompt"] = self.cfg.negative_prompt
        if self.cfg.diffusion_resolution:
            kwargs["height"] = kwargs["width"] = self.cfg.diffusion_resolution
        with torch.inference_mode():
            output = pipeline(**kwargs)
        flagged = getattr(output, "nsfw_content_detected", None)
        if flagged and flagged[0]:
            raise Refused("the pipeline's safety checker flagged the image")
        return ImageResult(output.images[0], Usage(0, 0, 1, 0.0), None)

    def estimate(self) -> Usage:
        return Usage()
