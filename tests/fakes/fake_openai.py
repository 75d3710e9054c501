"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for the tests and the benchmark.

It speaks just enough of the chat-completions and image-generation endpoints for the openai SDK (pointed at
it with OPENAI_BASE_URL) to parse its answers, and it can be told to misbehave, one answer at a time:

    with FakeOpenAI() as server:
        server.script("chat", "429", "ok")      # the next chat call is rate-limited, the one after succeeds
        server.script("images", "500", match="surfing")   # only for requests whose prompt mentions surfing
        os.environ["OPENAI_BASE_URL"] = server.base_url

and it can hold a client at a chosen point, so a test acts on a run while it is surely unfinished:

        server.hold_after(6)       # answer 6 requests, then keep every later one waiting
        server.wait_until_holding()
        ...                        # interrupt the client: it cannot have finished
        server.release()           # the waiting requests are answered, and all later ones
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

# What an answer can be. "ok" is the default once a script runs out.
BEHAVIOURS = ("ok", "429", "500", "hang", "refusal", "malformed_json", "wrong_count", "too_long",
              "content_policy", "bad_image", "auth", "echo_key")

PALETTE = 16  # distinct pictures the server answers with, chosen by the prompt

WORDS = ("person", "moves", "quickly", "across", "the", "bright", "field", "while", "friends", "watch", "from",
         "a", "bench", "and", "the", "camera", "follows", "each", "careful", "step")


def _sentence(topic: str, i: int, salt: str = "", words: int = 22) -> str:
    digest = hashlib.sha256(f"{topic}\x1f{i}\x1f{salt}".encode()).digest()
    body = [WORDS[b % len(WORDS)] for b in digest[:words - 4]]
    return f"Scene {i + 1} of {topic}: " + " ".join(body) + "."


class FakeOpenAI:
    def __init__(self, delay_s: float = 0.0, image_px: int = 64, hang_s: float = 5.0):
        self.delay_s = delay_s
        self.image_px = image_px
        self.hang_s = hang_s
        self.calls: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._scripts: dict[tuple[str, str], deque[str]] = {}
        self._lock = threading.Lock()
        self._pictures: dict[int, str] = {}
        self._released = threading.Event()
        self._released.set()
        self._answers_before_hold = 0
        self.holding = 0
        self._holding_changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def script(self, endpoint: str, *behaviours: str, match: str = "") -> None:
        """Queue answers for the next requests to `endpoint` ("chat" or "images") whose prompt contains
        `match` (any request when empty); the scripts of specific matches are used first."""
        if endpoint not in ("chat", "images"):
            raise ValueError(f"unknown endpoint {endpoint!r}")
        for behaviour in behaviours:
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {behaviour!r}")
        with self._lock:
            self._scripts.setdefault((endpoint, match), deque()).extend(behaviours)

    def hold_after(self, answers: int) -> None:
        """Answer the next `answers` requests, then keep every later one waiting (counted) until release()."""
        with self._lock:
            self._answers_before_hold = answers
            self._released.clear()

    def release(self) -> None:
        """Answer the requests being held, and every later one, as usual."""
        self._released.set()

    def wait_until_holding(self, requests: int = 1, timeout: float = 60.0) -> None:
        with self._holding_changed:
            if not self._holding_changed.wait_for(lambda: self.holding >= requests, timeout):
                raise TimeoutError(f"no client request held within {timeout:g} s")

    def _pass_gate(self) -> None:
        with self._lock:
            if self._released.is_set():
                return
            if self._answers_before_hold > 0:
                self._answers_before_hold -= 1
                return
            self.holding += 1
            self._holding_changed.notify_all()
        self._released.wait()
        with self._lock:
            self.holding -= 1

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.max_in_flight.clear()
            self.requests.clear()
            self.headers.clear()

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _next(self, endpoint: str, body: dict, headers: dict[str, str]) -> str:
        with self._lock:
            self.calls[endpoint] += 1
            self.in_flight[endpoint] += 1
            self.max_in_flight[endpoint] = max(self.max_in_flight[endpoint], self.in_flight[endpoint])
            self.requests.append({"endpoint": endpoint, **body})
            self.headers.append(headers)
            prompt = body["messages"][-1]["content"] if endpoint == "chat" else body.get("prompt", "")
            for (scripted, match), queue in sorted(self._scripts.items(), key=lambda item: -len(item[0][1])):
                if scripted == endpoint and queue and match in prompt:
                    return queue.popleft()
            return "ok"

    # -- answers -------------------------------------------------------------------------------------------

    def chat_answer(self, behaviour: str, body: dict) -> tuple[int, dict]:
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        described = schema.get("properties", {}).get("descriptions", {}).get("description", "")
        wanted = re.search(r"exactly (\d+)", described)
        k = int(wanted.group(1)) if wanted else 4
        topic = body["messages"][-1]["content"][:40]
        # Like a real model, another model or seed answers differently.
        salt = f"{body.get('model')}\x1f{body.get('seed')}"
        sentences = [_sentence(topic, i, salt) for i in range(k)]
        content: str | None = json.dumps({"descriptions": sentences})
        refusal = None
        if behaviour == "refusal":
            content, refusal = None, "I'm sorry, I can't help with that request."
        elif behaviour == "malformed_json":
            content = '{"descriptions": ["an unfinished answer'
        elif behaviour == "wrong_count":
            content = json.dumps({"descriptions": sentences[:-1]})
        elif behaviour == "too_long":
            content = json.dumps({"descriptions": [s + " and so on" * 60 for s in sentences]})
        message = {"role": "assistant", "content": content, "refusal": refusal}
        return 200, {
            "id": f"chatcmpl-{self.calls['chat']}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "gpt-4o"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40 * k, "total_tokens": 120 + 40 * k},
        }

    def _picture(self, shade: int) -> str:
        """A base64 PNG, one of PALETTE shades, encoded once: the server should not eat the client's CPU."""
        with self._lock:
            if shade not in self._pictures:
                image = Image.new("RGB", (self.image_px, self.image_px), (40 + 12 * shade, 90, 200 - 9 * shade))
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                self._pictures[shade] = base64.b64encode(buffer.getvalue()).decode()
            return self._pictures[shade]

    def image_answer(self, behaviour: str, body: dict) -> tuple[int, dict]:
        if behaviour == "content_policy":
            return 400, {"error": {"message": "Your request was rejected as a result of our safety system.",
                                   "type": "invalid_request_error", "param": None,
                                   "code": "content_policy_violation"}}
        if behaviour == "bad_image":
            data = base64.b64encode(b"this is not a picture").decode()
        else:
            data = self._picture(hashlib.sha256(body.get("prompt", "").encode()).digest()[0] % PALETTE)
        return 200, {"created": int(time.time()), "data": [{"b64_json": data, "revised_prompt": body.get("prompt")}]}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the client's
            # delayed ACK add ~40 ms to every answer, a latency no real API server has.
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                """GET /_stats: the call counts, for a client in another process (the benchmark)."""
                with fake._lock:
                    data = json.dumps({"calls": dict(fake.calls), "max_in_flight": dict(fake.max_in_flight)})
                self.send_response(200 if self.path == "/_stats" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def do_POST(self) -> None:
                if self.path == "/_reset":
                    fake.reset_counts()
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                endpoint = "chat" if self.path.endswith("/chat/completions") else "images"
                behaviour = fake._next(endpoint, body, {k.lower(): v for k, v in self.headers.items()})
                fake._pass_gate()
                time.sleep(fake.delay_s)
                if behaviour == "hang":
                    time.sleep(fake.hang_s)
                extra = {}
                if behaviour == "429":
                    status, answer = 429, {"error": {"message": "Rate limit reached", "type": "requests",
                                                     "param": None, "code": "rate_limit_exceeded"}}
                    extra["retry-after-ms"] = "10"
                elif behaviour == "500":
                    status, answer = 500, {"error": {"message": "The server had an error", "type": "server_error",
                                                     "param": None, "code": None}}
                elif behaviour == "auth":
                    status, answer = 401, {"error": {"message": "Incorrect API key provided: sk-test***", "type":
                                                     "invalid_request_error", "param": None, "code": "invalid_api_key"}}
                elif endpoint == "chat":
                    status, answer = fake.chat_answer(behaviour, body)
                    if behaviour == "echo_key":  # a successful answer that repeats the caller's key
                        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                        content = json.loads(answer["choices"][0]["message"]["content"])
                        content["descriptions"] = [f"{s} Your key is {key}." for s in content["descriptions"]]
                        answer["choices"][0]["message"]["content"] = json.dumps(content)
                        answer["system_fingerprint"] = key
                else:
                    status, answer = fake.image_answer(behaviour, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("x-request-id", f"req_{endpoint}_{fake.calls[endpoint]}")
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with fake._lock:
                        fake.in_flight[endpoint] -= 1

        return Handler


def main() -> None:
    """Serve until killed, announcing the base URL on the first line of stdout (the benchmark's server)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="A scripted OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--image-px", type=int, default=64, help="side of the PNGs it answers with")
    args = parser.parse_args()
    with FakeOpenAI(delay_s=args.delay, image_px=args.image_px) as server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # until the parent closes our stdin or kills us


if __name__ == "__main__":
    main()
