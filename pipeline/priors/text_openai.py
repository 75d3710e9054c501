"""The openai text backend: k descriptions from a GPT-4-class chat model in one structured-output call."""

from __future__ import annotations

import json

from pipeline.priors.backends import TextRequest, TextResult
from pipeline.priors.config import GenerateConfig
from pipeline.priors.faults import MalformedOutput, Refused, Usage
from pipeline.priors.openai_client import LazyClient, call
from pipeline.priors.pricing import estimate_text_usage, text_cost


def response_schema(k: int) -> dict:
    """JSON-schema structured output: an object holding a list of k strings.

    The count is said in the description, not as minItems/maxItems: length keywords are not accepted by every
    model's strict mode, and the runner checks the count (retrying a wrong one) anyway.
    """
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "action_descriptions",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "descriptions": {"type": "array", "items": {"type": "string"},
                                     "description": f"exactly {k} different one-sentence descriptions"},
                },
                "required": ["descriptions"],
                "additionalProperties": False,
            },
        },
    }


def parse_descriptions(content: str | None) -> list:
    if not content:
        raise MalformedOutput("empty answer")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as err:
        raise MalformedOutput(f"answer is not JSON ({err.msg} at character {err.pos})") from None
    if not isinstance(data, dict) or not isinstance(data.get("descriptions"), list):
        raise MalformedOutput("answer has no 'descriptions' list")
    return data["descriptions"]


class OpenAITextBackend:
    name = "openai"
    remote = True

    def __init__(self, cfg: GenerateConfig, client: LazyClient | None = None):
        self.cfg = cfg
        self.model = cfg.resolved_text_model
        self.client = client or LazyClient(cfg.timeout_s)

    def messages(self, action: str, k: int) -> list[dict[str, str]]:
        user = self.cfg.text_prompt.format(action=action, k=k, words=self.cfg.target_words)
        return [{"role": "system", "content": self.cfg.text_system_prompt}, {"role": "user", "content": user}]

    def key_fields(self) -> dict:
        return {"response_format": response_schema(self.cfg.k)}

    def generate(self, request: TextRequest) -> TextResult:
        client = self.client.get()
        # Room for k sentences at the longest accepted length; a runaway answer is cut and retried.
        max_tokens = int(request.k * self.cfg.max_words * 2) + 64
        response = call(
            lambda: client.chat.completions.create(
                model=self.model,
                messages=request.messages,
                response_format=response_schema(request.k),
                seed=request.seed + request.attempt,
                max_completion_tokens=max_tokens,
            ),
            self.model, self.cfg.timeout_s,
        )
        request_id = getattr(response, "_request_id", None)
        usage = Usage()
        if response.usage is not None:
            prompt_tokens, completion_tokens = response.usage.prompt_tokens, response.usage.completion_tokens
            usage = Usage(prompt_tokens, completion_tokens, 0, text_cost(self.model, prompt_tokens, completion_tokens))
        if not response.choices:
            raise MalformedOutput("answer has no choices", usage=usage, request_id=request_id)
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal:
            raise Refused(f"model refused: {refusal}", usage=usage, request_id=request_id)
        if choice.finish_reason == "content_filter":
            raise Refused("answer withheld by the content filter", usage=usage, request_id=request_id)
        if choice.finish_reason == "length":
            raise MalformedOutput(f"answer cut off at {max_tokens} tokens", usage=usage, request_id=request_id)
        try:
            sentences = parse_descriptions(choice.message.content)
        except MalformedOutput as err:
            raise MalformedOutput(err.detail, usage=usage, request_id=request_id) from None
        return TextResult(sentences, usage, request_id)

    def estimate(self, messages: list[dict[str, str]], k: int) -> Usage:
        chars = sum(len(m["content"]) for m in messages) + len(json.dumps(response_schema(k)))
        return estimate_text_usage(self.model, chars, k, self.cfg.target_words)
