"""Time `--help` of every command line (each stage, each extract subcommand, `grizal`) and `grizal --version`.

Run: .venv/bin/python -m benchmarks.bench_cli [--repeats 5] [--limit 2.0]
Each command runs in a fresh process, once to warm up and then `--repeats` times, in two environments: Python
writing bytecode (PYTHONDONTWRITEBYTECODE unset, as users' Python does; the bytecode goes to a temporary
PYTHONPYCACHEPREFIX so the source tree stays untouched) and PYTHONDONTWRITEBYTECODE=1 (as our machines and CI
run). Prints a markdown table of median and max seconds, and each median as a multiple of this machine's
`python -c "import torch"` measured in the same run (with `python -c pass` for the interpreter's own start).
Exits 1 when a command fails or any median is at or above `--limit` seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("demo_world", "prepare", "generate", "extract", "train", "evaluate", "results", "score")
EXTRACT_COMMANDS = ("rgb", "flow", "priors", "check", "videos", "import")
BASELINES = {"python -c pass": ["-c", "pass"], 'python -c "import torch"': ["-c", "import torch"]}


def grizal_script() -> list[str]:
    """The installed `grizal` console script, or what it runs when the package is not installed."""
    script = Path(sys.executable).with_name("grizal")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from pipeline.apps.cli import main; sys.argv[0] = 'grizal'; main()"]


def commands() -> dict[str, list[str]]:
    py = sys.executable
    out = {f"python -m pipeline.{stage} --help": [py, "-m", f"pipeline.{stage}", "--help"] for stage in STAGES}
    out |= {f"python -m pipeline.extract {sub} --help": [py, "-m", "pipeline.extract", sub, "--help"]
            for sub in EXTRACT_COMMANDS}
    grizal = grizal_script()
    out |= {
        "grizal --help": [*grizal, "--help"],
        "grizal localize --help": [*grizal, "localize", "--help"],
        "grizal --version": [*grizal, "--version"],
        "python -m pipeline.apps.cli localize --help": [py, "-m", "pipeline.apps.cli", "localize", "--help"],
    }
    return out


def environments(pycache: Path) -> dict[str, dict[str, str]]:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    return {
        "bytecode written": {**base, "PYTHONPYCACHEPREFIX": str(pycache)},
        "PYTHONDONTWRITEBYTECODE=1": {**base, "PYTHONDONTWRITEBYTECODE": "1"},
    }


def run_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return seconds


def measure(argv: list[str], env: dict[str, str], repeats: int) -> list[float]:
    run_once(argv, env)  # warm-up: bytecode written, files in the page cache
    return [run_once(argv, env) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command and environment")
    parser.add_argument("--limit", type=float, default=2.0, help="fail when a median reaches this many seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cli-pycache-") as pycache:
        envs = environments(Path(pycache))
        baselines = {name: {env: measure([sys.executable, *argv], values, args.repeats)
                            for env, values in envs.items()} for name, argv in BASELINES.items()}
        times: dict[str, dict[str, list[float]]] = {}
        failures: list[str] = []
        for name, argv in commands().items():
            try:
                times[name] = {env: measure(argv, values, args.repeats) for env, values in envs.items()}
            except RuntimeError as err:
                failures.append(str(err))

    torch_median = {env: statistics.median(baselines['python -c "import torch"'][env]) for env in envs}
    header = "| command | " + " | ".join(f"{env}: median / max s | × import torch" for env in envs) + " |"
    print(f"{args.repeats} runs per command after one warm-up, {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}\n")
    print(header)
    print("| --- |" + " --- | --- |" * len(envs))
    slow = []
    for name, per_env in [*baselines.items(), *times.items()]:
        cells = []
        for env, values in per_env.items():
            median = statistics.median(values)
            cells.append(f"{median:.2f} / {max(values):.2f} | {median / torch_median[env]:.2f}")
            if name not in baselines and median >= args.limit:
                slow.append(f"{name} ({env}): median {median:.2f} s")
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    for problem in failures:
        print(f"failed: {problem}", file=sys.stderr)
    for problem in slow:
        print(f"too slow (limit {args.limit:.1f} s): {problem}", file=sys.stderr)
    if failures or slow:
        raise SystemExit(1)
    print(f"\nevery median under {args.limit:.1f} s")


if __name__ == "__main__":
    main()
