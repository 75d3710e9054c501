"""How evenly `--shard` splits the decode work of a real data set: max/mean work per shard, balanced vs by count.

Run: .venv/bin/python -m benchmarks.bench_shards [--shards 8 32 128]
Work is each video's decode cost, duration x frame rate (the frames PyAV decodes), from the shipped annotations:
THUMOS14 (thumos_anno_action.json through the prepare stage's parser) and ActivityNet v1.3 (video_info_new.csv).
"balanced" is what `--shard` does (`pipeline.features.store.balance_shards`); "by count" is the earlier split by a
hash of the video id, equal counts in expectation. max/mean is the array's wall time over the ideal: 1.00 means no
task waits for another. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from pipeline.data.activitynet import read_video_info
from pipeline.data.thumos import parse_thumos
from pipeline.features.store import balance_shards

SHIPPED = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "shipped"


def thumos() -> tuple[dict[str, float], float]:
    """Decode cost of each video, and the hours of video."""
    index = parse_thumos(SHIPPED / "thumos_annotations" / "thumos_anno_action.json")
    hours = sum(entry.duration for entry in index.videos.values()) / 3600
    return {vid: entry.duration * entry.fps for vid, entry in index.videos.items()}, hours


def activitynet() -> tuple[dict[str, float], float]:
    info = read_video_info(SHIPPED / "activitynet_annotations" / "video_info_new.csv")
    hours = sum(seconds for _subset, _fps, seconds in info.values()) / 3600
    return {vid: seconds * fps for vid, (_subset, fps, seconds) in info.items()}, hours


def by_count(costs: dict[str, float], count: int) -> list[list[str]]:
    shards: list[list[str]] = [[] for _ in range(count)]
    for vid in costs:
        shards[int(hashlib.sha256(vid.encode()).hexdigest()[:16], 16) % count].append(vid)
    return shards


def max_over_mean(costs: dict[str, float], shards: list[list[str]]) -> float:
    work = [sum(costs[v] for v in shard) for shard in shards]
    return max(work) / (sum(work) / len(work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[8, 32, 128])
    args = parser.parse_args()
    print("| data set | videos | hours | shards | longest video / mean work | max/mean, balanced | "
          "max/mean, by count | split time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, (costs, hours) in (("THUMOS14", thumos()), ("ActivityNet v1.3", activitynet())):
        for count in args.shards:
            start = time.perf_counter()
            balanced = balance_shards(costs, count)
            took = time.perf_counter() - start
            longest = max(costs.values()) / (sum(costs.values()) / count)
            print(f"| {name} | {len(costs):,} | {hours:.0f} | {count} | {longest:.2f} | "
                  f"{max_over_mean(costs, balanced):.3f} | {max_over_mean(costs, by_count(costs, count)):.3f} | "
                  f"{took * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
