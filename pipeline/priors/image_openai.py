"""The openai image backend: DALL-E 3 / DALL-E 2 / gpt-image-1 through `images.generate`, one image per call."""

from __future__ import annotations

import base64
import binascii
import urllib.error
import urllib.request

from pipeline.priors.backends import ImageRequest, ImageResult
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import MalformedOutput, TransientError, Usage
from pipeline.priors.openai_client import LazyClient, call
from pipeline.priors.pricing import image_cost
from pipeline.priors.validate import decode_image


class OpenAIImageBackend:
    name = "openai"
    remote = True
    uses_prompt = True

    def __init__(self, cfg: GenerateConfig, client: LazyClient | None = None):
        self.cfg = cfg
        self.model = cfg.resolved_image_model
        self.client = client or LazyClient(cfg.timeout_s)
        self.quality = cfg.openai_image_quality or None

    def key_fields(self, request: ImageRequest) -> dict:
        return {"api_size": self.cfg.openai_image_size, "quality": self.quality}

    def _arguments(self, prompt: str) -> dict:
        kwargs = {"model": self.model, "prompt": prompt, "n": 1, "size": self.cfg.openai_image_size}
        if self.quality:
            kwargs["quality"] = self.quality
        # DALL-E models answer with a URL unless asked for base64; gpt-image models always send base64.
        if self.model.startswith("dall-e"):
            kwargs["response_format"] = "b64_json"
        return kwargs

    def generate(self, request: ImageRequest) -> ImageResult:
        client = self.client.get()
        response = call(lambda: client.images.generate(**self._arguments(request.prompt)),
                        self.model, self.cfg.timeout_s)
        request_id = getattr(response, "_request_id", None)
        usage = self.estimate()
        if not response.data:
            raise MalformedOutput("answer holds no image", usage=usage, request_id=request_id)
        item = response.data[0]
        if item.b64_json:
            try:
                data = base64.b64decode(item.b64_json, validate=True)
            except (binascii.Error, ValueError):
                raise MalformedOutput("image is not valid base64", usage=usage, request_id=request_id) from None
        elif item.url:
            data = self._download(item.url, usage, request_id)
        else:
            raise MalformedOutput("answer holds neither image data nor a URL", usage=usage, request_id=request_id)
        try:
            image = decode_image(data)
        except MalformedOutput as err:
            raise MalformedOutput(err.detail, usage=usage, request_id=request_id) from None
        return ImageResult(image, usage, request_id)

    def _download(self, url: str, usage: Usage, request_id: str | None) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.cfg.timeout_s) as reply:
                return reply.read()
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            # The image is billed already; a retry makes (and bills) a new one, so the cost goes with the error.
            raise TransientError(f"could not download the image ({err})", usage=usage,
                                 request_id=request_id) from None

    def estimate(self) -> Usage:
        return Usage(0, 0, 1, image_cost(self.model, self.quality, self.cfg.openai_image_size))
