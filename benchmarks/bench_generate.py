"""Benchmark of the generate stage's API path against a loopback OpenAI-compatible server.

The server (tests/fakes/fake_openai.py, on 127.0.0.1 in its own process, like a real API) answers every
request after a fixed delay standing in for API latency, with a PNG for image requests. Targets (issue 3):
200 classes x (1 text call + 4 image calls) in under 30 s at the default concurrency, and a rerun that makes
zero calls in under 2 s.

    .venv/bin/python -m benchmarks.bench_generate            # defaults: 200 classes, 200 ms, 256 px images
    .venv/bin/python -m benchmarks.bench_generate --classes 50 --delay 0.5 --concurrency 16
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from pipeline.priors.config import GenerateConfig, build_config
from pipeline.priors.generation import run

FAKE_SERVER = Path(__file__).resolve().parents[1] / "tests" / "fakes" / "fake_openai.py"
FIRST_RUN_TARGET_S = 30.0
RERUN_TARGET_S = 2.0


class ServerProcess:
    def __init__(self, delay: float, image_px: int):
        self.process = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--delay", str(delay), "--image-px", str(image_px)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.base_url = self.process.stdout.readline().strip()
        self.root = self.base_url.removesuffix("/v1")

    def calls(self) -> dict[str, int]:
        with urllib.request.urlopen(self.root + "/_stats", timeout=10) as reply:
            return json.loads(reply.read())["calls"]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.root + "/_reset", method="POST"), timeout=10).close()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, default=GenerateConfig.model_fields["concurrency"].default)
    parser.add_argument("--image-px", type=int, default=256, help="side of the PNGs the server returns")
    args = parser.parse_args()

    names = [f"benchmark action {i:03d}" for i in range(args.classes)]
    quiet = Console(file=io.StringIO())
    server = ServerProcess(args.delay, args.image_px)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["OPENAI_BASE_URL"] = server.base_url
            os.environ["OPENAI_API_KEY"] = "sk-benchmark-not-a-real-key"
            out = Path(tmp) / "priors"
            cfg = build_config(None, overrides={"out": out, "text_backend": "openai", "image_backend": "openai",
                                                "k": args.k, "concurrency": args.concurrency})
            start = time.perf_counter()
            code = run(cfg, names, console=quiet)
            first = time.perf_counter() - start
            first_calls = server.calls()
            expected = {"chat": args.classes, "images": args.classes * args.k}

            server.reset()
            start = time.perf_counter()
            rerun_code = run(cfg, names, console=quiet)
            rerun = time.perf_counter() - start
            rerun_calls = sum(server.calls().values())

            # The same rerun as a user types it: a fresh process, imports included.
            classes_file = Path(tmp) / "classes.txt"
            classes_file.write_text("\n".join(names) + "\n")
            start = time.perf_counter()
            cli = subprocess.run(
                [sys.executable, "-m", "pipeline.generate", "--classes-file", str(classes_file), "--out", str(out),
                 "--text-backend", "openai", "--image-backend", "openai", "--k", str(args.k)],
                capture_output=True, text=True, env=os.environ.copy(),
            )
            cli_rerun = time.perf_counter() - start
            cli_calls = sum(server.calls().values())
    finally:
        server.close()

    floor = args.classes * args.k * args.delay / args.concurrency
    print(f"{args.classes} classes x (1 text + {args.k} image calls), server delay {args.delay * 1000:.0f} ms, "
          f"{args.image_px} px PNGs, concurrency {args.concurrency} per API backend")
    print(f"first run : {first:6.2f} s  exit {code}  calls {first_calls} (expected {expected})  "
          f"[target < {FIRST_RUN_TARGET_S:.0f} s: {'PASS' if first < FIRST_RUN_TARGET_S else 'FAIL'}]  "
          f"(floor: the image calls alone take {floor:.1f} s at this concurrency)")
    print(f"rerun     : {rerun:6.2f} s  exit {rerun_code}  calls {rerun_calls}  "
          f"[target < {RERUN_TARGET_S:.0f} s with 0 calls: "
          f"{'PASS' if rerun < RERUN_TARGET_S and rerun_calls == 0 else 'FAIL'}]")
    print(f"CLI rerun : {cli_rerun:6.2f} s  exit {cli.returncode}  calls {cli_calls}  (new process, imports included)")
    ok = code == rerun_code == cli.returncode == 0 and first_calls == expected and rerun_calls == cli_calls == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
