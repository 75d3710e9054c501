"""The whole pipeline, timed stage by stage, from a fresh copy of the project: what `make repro` costs here.

    python -m benchmarks.bench_repro                                    # every stage of dvc.yaml
    python -m benchmarks.bench_repro --stages demo_world prepare generate --params-set demo.videos_per_class_train=1

The project's files as git sees them (tracked and new, not ignored, with the working tree's edits) are copied
into a fresh folder (a temporary one, removed afterwards, or ``--workdir``, kept), made a git repository with one
commit, and every stage runs with ``dvc repro --single-item <stage>`` in the DAG's order (``dvc dag``), so each
stage's wall time is its own. ``--stages`` limits the run to those stages and the ones they depend on;
``--params-set key=value`` (a dotted key, a YAML value) edits the copy's params.yaml. The table ends with the
machine's own limit, a square matmul in bf16 and fp32 (GFLOP/s, the best of before and after the stages), so
figures from different machines can be compared; every row names the CPU (its model, the kernels torch dispatches
and whether bf16 is native). ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` before the command makes torch
and oneDNN use AVX2 kernels only, as on a CPU without AVX-512 (no native bf16). Each stage also gets its CPU
seconds (user + system of all its processes), which other load on the machine changes far less than wall time,
and the table gives the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.machine import cpu_description, matmul_gflops
from benchmarks.workspace import copy_project, set_dotted


class BenchError(Exception):
    """Bad input: printed as one ``error:`` line, exit status 2."""


class StageFailed(Exception):
    def __init__(self, stage: str, code: int, log: Path):
        super().__init__(stage)
        self.stage, self.code, self.log = stage, code, log


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def machine_limit() -> dict[str, float]:
    return {"bf16_gflops": matmul_gflops("bfloat16"), "fp32_gflops": matmul_gflops("float32")}


def bench_env() -> dict[str, str]:
    """The venv's python and dvc first on PATH (dvc.yaml's ``python -m`` runs the same interpreter)."""
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, **GIT_IDENTITY, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1"}


def prepare_copy(dest: Path, overrides: list[str], env: dict[str, str]) -> None:
    copy_project(dest)
    (dest / "dvc.lock").unlink(missing_ok=True)  # a clean run: nothing recorded, nothing skipped
    if overrides:
        params = yaml.safe_load((dest / "params.yaml").read_text())
        for item in overrides:
            key, value = parse_override(item)
            try:
                set_dotted(params, key, value)
            except (KeyError, TypeError):
                raise BenchError(f"--params-set {item}: params.yaml has no section for {key!r}") from None
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for args in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench_repro copy"]):
        subprocess.run(args, cwd=dest, env=env, check=True, capture_output=True)
    if not (dest / ".dvc").is_dir():
        subprocess.run([dvc_bin(), "init", "-q"], cwd=dest, env=env, check=True, capture_output=True)


def parse_override(item: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise BenchError(f"--params-set {item}: expected key=value (a dotted key, a YAML value)")
    return key, yaml.safe_load(value)


def dvc_bin() -> str:
    return str(Path(sys.executable).parent / "dvc")


def stage_edges(dest: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    """(stage, a stage that reads its outputs) pairs, from ``dvc dag --dot``."""
    dot = subprocess.run([dvc_bin(), "dag", "--dot"], cwd=dest, env=env, check=True, capture_output=True,
                         text=True).stdout
    return re.findall(r'"?([\w.-]+)"?\s*->\s*"?([\w.-]+)"?', dot)


def stage_order(dest: Path, edges: list[tuple[str, str]]) -> list[str]:
    """The stages in dependency order, ties kept in dvc.yaml's order."""
    declared = list(yaml.safe_load((dest / "dvc.yaml").read_text())["stages"])
    upstream: dict[str, set[str]] = {name: set() for name in declared}
    for a, b in edges:
        upstream.setdefault(b, set()).add(a)
        upstream.setdefault(a, set())
    order: list[str] = []
    while len(order) < len(upstream):
        ready = [s for s in declared + sorted(set(upstream) - set(declared))
                 if s not in order and upstream[s] <= set(order)]
        if not ready:
            raise BenchError(f"{dest / 'dvc.yaml'}: the stage graph has a cycle")
        order.append(ready[0])
    return order


def with_ancestors(order: list[str], wanted: list[str], edges: list[tuple[str, str]]) -> list[str]:
    unknown = [s for s in wanted if s not in order]
    if unknown:
        raise BenchError(f"--stages: no stage {', '.join(unknown)} in dvc.yaml (stages: {', '.join(order)})")
    needed = set(wanted)
    grew = True
    while grew:
        before = len(needed)
        needed |= {a for a, b in edges if b in needed}
        grew = len(needed) > before
    return [s for s in order if s in needed]


def children_cpu_seconds() -> float:
    """User + system CPU seconds of every finished descendant process (the stage's python included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stage(stage: str, dest: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """The stage's wall seconds and CPU seconds (all its processes; less sensitive to other load than wall)."""
    start, cpu_start = time.perf_counter(), children_cpu_seconds()
    with log.open("a") as out:
        out.write(f"\n=== dvc repro --single-item {stage}\n")
        out.flush()
        result = subprocess.run([dvc_bin(), "repro", "--single-item", stage], cwd=dest, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    seconds, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_start
    if result.returncode != 0:
        raise StageFailed(stage, result.returncode, log)
    return seconds, cpu


def table(times: dict[str, float], cpu_times: dict[str, float], limit: dict[str, float], cpu: str,
          load: tuple[float, float]) -> str:
    rows = ["| stage | wall s | CPU s | CPU |", "| --- | ---: | ---: | --- |"]
    rows += [f"| {stage} | {seconds:.1f} | {cpu_times[stage]:.1f} | {cpu} |" for stage, seconds in times.items()]
    rows.append(f"| **total** | **{sum(times.values()):.1f}** | **{sum(cpu_times.values()):.1f}** | {cpu} |")
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    rows.append(f"\nload average (1 min) {load[0]:.1f} before, {load[1]:.1f} after: other processes share the cores "
                "when it is above 0")
    rows.append(f"machine: {os.cpu_count()} cores (OMP_NUM_THREADS={threads}); square matmul "
                f"bf16 {limit['bf16_gflops']:.1f} GFLOP/s, fp32 {limit['fp32_gflops']:.1f} GFLOP/s")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="copy the project here (an empty or new folder; kept)")
    parser.add_argument("--stages", nargs="+", help="only these stages (and the stages they depend on)")
    parser.add_argument("--params-set", action="append", default=[], metavar="KEY=VALUE",
                        help="edit the copy's params.yaml, e.g. demo.videos_per_class_train=1 (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        print(f"error: {args.workdir}: --workdir must be empty or new", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    dest = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="grizal-bench-repro-"))
    keep = args.workdir is not None
    try:
        return run(args, dest, bench_env())
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StageFailed as failed:
        keep = True  # for its log
        print("\n".join(failed.log.read_text().splitlines()[-30:]), file=sys.stderr)
        print(f"error: stage {failed.stage} failed (exit {failed.code}); log and copy kept: {failed.log}",
              file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)


def run(args: argparse.Namespace, dest: Path, env: dict[str, str]) -> int:
    limit_before = machine_limit()
    prepare_copy(dest, args.params_set, env)
    edges = stage_edges(dest, env)
    order = stage_order(dest, edges)
    if args.stages:
        order = with_ancestors(order, args.stages, edges)
    log = dest / "bench_repro.log"
    cpu = cpu_description()  # the stages inherit this environment: ATEN_CPU_CAPABILITY and all
    print(f"copy: {dest}; stages: {' '.join(order)}; log: {log}; CPU: {cpu}", flush=True)
    times: dict[str, float] = {}
    cpu_times: dict[str, float] = {}
    load_before = os.getloadavg()[0]
    for stage in order:
        times[stage], cpu_times[stage] = run_stage(stage, dest, env, log)
        print(f"  {stage}: {times[stage]:.1f} s wall, {cpu_times[stage]:.1f} s CPU", flush=True)
    load = (load_before, os.getloadavg()[0])
    limit_after = machine_limit()
    limit = {key: max(limit_before[key], limit_after[key]) for key in limit_before}
    print(table(times, cpu_times, limit, cpu, load))
    if args.json is not None:
        args.json.write_text(json.dumps({"stages": times, "cpu_s": cpu_times, "total_s": sum(times.values()),
                                         "load_average": load, "limit": limit, "cpu": cpu,
                                         "params_set": args.params_set, "cpu_count": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
