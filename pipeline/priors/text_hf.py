"""The hf text backend: a local transformers causal LM (LLaMa-2, Mixtral, ... by model id or local folder).

Each of the k descriptions is one sampled continuation of the prompt; sampling is seeded, so the same seed
gives the same sentences.
"""

from __future__ import annotations

import re
import threading

from pipeline.priors.backends import TextRequest, TextResult
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import FatalBackendError, Usage
from pipeline.priors.torch_device import pick_device, pick_dtype

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str) -> str:
    """The first non-empty line, cut after its first full sentence."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return _SENTENCE_END.split(line, maxsplit=1)[0].strip()


class HFTextBackend:
    name = "hf"
    remote = False

    def __init__(self, cfg: GenerateConfig, model=None, tokenizer=None):
        self.cfg = cfg
        self.model = cfg.resolved_text_model
        self._lm = model
        self._tokenizer = tokenizer
        self._device = None
        self._lock = threading.Lock()

    def messages(self, action: str, k: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.cfg.hf_prompt.format(action=action, words=self.cfg.target_words)}]

    def key_fields(self) -> dict:
        return {"max_new_tokens": self.cfg.hf_max_new_tokens, "temperature": self.cfg.hf_temperature,
                "top_p": self.cfg.hf_top_p}

    def _load(self):
        with self._lock:
            if self._lm is None:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                device = pick_device(self.cfg.device)
                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model)
                    lm = AutoModelForCausalLM.from_pretrained(self.model, dtype=pick_dtype(device))
                except (OSError, ValueError) as err:
                    raise FatalBackendError("text_model", f"cannot load '{self.model}': "
                                            f"{str(err).strip().splitlines()[0]}") from None
                self._tokenizer, self._lm = tokenizer, lm.to(device).eval()
            if self._device is None:
                self._device = next(self._lm.parameters()).device
        return self._tokenizer, self._lm

    def _encode(self, tokenizer, messages: list[dict[str, str]]):
        """Chat models get their chat template (which already holds the special tokens); base models the text."""
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return tokenizer(text, return_tensors="pt", add_special_tokens=False)
        return tokenizer(messages[-1]["content"], return_tensors="pt")

    def generate(self, request: TextRequest) -> TextResult:
        import torch

        tokenizer, lm = self._load()
        inputs = self._encode(tokenizer, request.messages).to(self._device)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        devices = [self._device] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(request.seed * 1000 + request.attempt)
            output = lm.generate(
                **inputs, do_sample=True, temperature=self.cfg.hf_temperature, top_p=self.cfg.hf_top_p,
                max_new_tokens=self.cfg.hf_max_new_tokens, num_return_sequences=request.k, pad_token_id=pad_id,
            )
        prompt_len = inputs["input_ids"].shape[1]
        generated = output[:, prompt_len:]
        completions = tokenizer.batch_decode(generated, skip_special_tokens=True)
        new_tokens = int((generated != pad_id).sum()) if pad_id is not None else generated.numel()
        usage = Usage(prompt_len * request.k, new_tokens, 0, 0.0)
        return TextResult([first_sentence(c) for c in completions], usage, None)

    def estimate(self, messages, k) -> Usage:
        return Usage()
