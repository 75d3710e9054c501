"""What can go wrong with one item, how long to wait before trying again, and keeping secrets out of logs."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Usage:
    """What one or more calls billed. cost_usd is an estimate from pipeline.priors.pricing (None: unknown)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.images + other.images, cost)

    def as_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "images": self.images, "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6)}


class ItemError(Exception):
    """One item could not be made. `reason` is a short kind ("refused", "malformed", ...) for the summary."""

    reason = "failed"
    retryable = False
    attempts: int | None = None

    def __init__(self, detail: str, *, usage: Usage | None = None, request_id: str | None = None,
                 retry_after: float | None = None):
        super().__init__(redact(detail))
        self.detail = redact(detail)
        self.usage = usage or Usage()
        self.request_id = request_id
        self.retry_after = retry_after


class TransientError(ItemError):
    """Rate limits, server errors, timeouts, dropped connections: worth trying again after a pause."""

    reason = "transient"
    retryable = True


class MalformedOutput(ItemError):
    """The backend answered, but not with what was asked (not JSON, not k sentences, far too long, no image)."""

    reason = "malformed"
    retryable = True


class Refused(ItemError):
    """A refusal or content-policy rejection: recorded, not retried."""

    reason = "refused"


class PermanentError(ItemError):
    """A request the backend will never accept as it is (bad request, a missing source image)."""

    reason = "failed"


class FatalBackendError(Exception):
    """No item can succeed (no API key, key rejected, unknown model): the run stops with a one-line error."""

    def __init__(self, where: str, problem: str):
        super().__init__(redact(problem))
        self.where = where
        self.problem = redact(problem)


@dataclass
class RetryPolicy:
    max_retries: int = 4
    malformed_retries: int = 2
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def allows(self, error: ItemError, transient_tries: int, malformed_tries: int) -> bool:
        if isinstance(error, TransientError):
            return transient_tries <= self.max_retries
        if isinstance(error, MalformedOutput):
            return malformed_tries <= self.malformed_retries
        return False

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter; a server's Retry-After wins but is capped like the rest."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.backoff_max_s)
        base = min(self.backoff_s * (2 ** (retry - 1)), self.backoff_max_s)
        return base * self.rng.uniform(0.5, 1.0)


_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-*]{4,}")


def redact(text: str) -> str:
    """Remove API keys (the one in the environment, and anything shaped like one) from a message."""
    secret = os.environ.get("OPENAI_API_KEY")
    if secret and len(secret) >= 8:
        text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub(r"\1…[redacted]", text)


def redact_value(value: Any) -> Any:
    """`redact` applied to every string inside lists and dicts (keys included): for anything stored."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    return value


class UnexpectedError(ItemError):
    """A bug or library failure inside a backend: recorded for the item with its type, the batch goes on."""

    reason = "error"


class Interrupted(ItemError):
    """The run was stopped (Ctrl-C, SIGTERM) before this item started."""

    reason = "interrupted"
