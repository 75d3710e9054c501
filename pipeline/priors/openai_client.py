"""The shared OpenAI client and the mapping from SDK errors to what the runner does about them.

The SDK's own retries are switched off (max_retries=0): the runner retries, so every retry is visible in
the manifest and testable with a short backoff.
"""

from __future__ import annotations

import os
import threading

from pipeline.priors.faults import (
    FatalBackendError,
    ItemError,
    MalformedOutput,
    PermanentError,
    Refused,
    TransientError,
)

_REFUSAL_CODES = {"content_policy_violation", "moderation_blocked", "content_filter"}


class LazyClient:
    """Creates the client on first use, so a run that finds everything cached needs no key and no SDK."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._client = None
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._client is None:
                api_key = os.environ.get("OPENAI_API_KEY")
                if not api_key:
                    raise FatalBackendError(
                        "OPENAI_API_KEY", "not set (the openai backends read the API key from the environment only)"
                    )
                import openai

                self._client = openai.OpenAI(
                    api_key=api_key,
                    base_url=os.environ.get("OPENAI_BASE_URL") or None,
                    max_retries=0,
                    timeout=self.timeout_s,
                )
            return self._client


def _retry_after(response) -> float | None:
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None


def _message(err) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(err, "message", None) or err)


def _code(err) -> str | None:
    code = getattr(err, "code", None)
    body = getattr(err, "body", None)
    if code is None and isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
    return str(code) if code is not None else None


def classify(err: Exception, model: str, timeout_s: float) -> ItemError | FatalBackendError:
    """Turn an openai SDK exception into a runner decision: retry, record, or stop the run."""
    import openai

    if isinstance(err, openai.APITimeoutError):
        return TransientError(f"timed out after {timeout_s:g} s")
    if isinstance(err, openai.APIConnectionError):
        return TransientError(f"connection error ({err})")
    if isinstance(err, openai.APIResponseValidationError):
        return MalformedOutput(f"response does not match the API schema ({_message(err)})")
    if isinstance(err, openai.APIStatusError):
        status, code, message = err.status_code, _code(err), _message(err)
        request_id = err.request_id
        if status == 429 and code == "insufficient_quota":
            return FatalBackendError("OPENAI_API_KEY", f"quota exhausted (429): {message}")
        if status in (401, 403):
            return FatalBackendError("OPENAI_API_KEY", f"rejected by the API ({status}): {message}")
        if status == 404:
            return FatalBackendError("model", f"'{model}' is not available ({status}): {message}")
        if status in (408, 409, 429) or status >= 500:
            return TransientError(f"HTTP {status}: {message}", request_id=request_id,
                                  retry_after=_retry_after(err.response))
        if code in _REFUSAL_CODES or "safety system" in message.lower():
            return Refused(f"content policy ({status}): {message}", request_id=request_id)
        return PermanentError(f"HTTP {status}: {message}", request_id=request_id)
    return PermanentError(f"{type(err).__name__}: {err}")


def call(fn, model: str, timeout_s: float):
    """Run one SDK call, raising the runner's error types instead of the SDK's."""
    import openai

    try:
        return fn()
    except openai.OpenAIError as err:
        raise classify(err, model, timeout_s) from err
