"""`cadre demo` wall time, per-step time and peak memory (the process tree's RSS, sampled every 0.2 s).

Runs the demo in a child process from a clean output folder (setup, i.e. installing, excluded), captures its
output to ``<out>/demo.log`` and checks that log for library warnings and llama.cpp/ggml log lines, which the
default output must not show.

    .venv/bin/python benchmarks/demo_run.py --fast --out /tmp/demo-fast [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

# what "a library warning or a C-level log line" looks like in the output
NOISE = re.compile(r"(Warning|warning:|warn\(|llama_|ggml_|load_tensors|print_info|gguf_init|UserWarning)")


STEP = re.compile(r"^→ (\S+)", re.M)


def _tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(sum of RSS over the process and its children, the largest single RSS), bytes."""
    total = largest = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


def run_once(out: Path, fast: bool, extra: list[str], *, keep: bool = False) -> dict[str, Any]:
    if out.exists() and not keep:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", "from cadre.cli.main import main; main()", "demo", "--out", str(out), *extra]
    if fast:
        cmd.append("--fast")
    log = out / "demo.log"
    t0 = time.perf_counter()
    with log.open("w") as fh:
        child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ})
        ps = psutil.Process(child.pid)
        peak_tree = peak_one = 0
        by_step: dict[str, int] = {}  # the tree's peak while each step ran (the last "→ step" line printed)
        while child.poll() is None:
            tree, one = _tree_rss(ps)
            peak_tree, peak_one = max(peak_tree, tree), max(peak_one, one)
            started = STEP.findall(log.read_text(errors="replace"))
            step = started[-1] if started else "start"
            by_step[step] = max(by_step.get(step, 0), tree)
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    steps = {
        k: (v.get("seconds") if v.get("status") == "done" else v.get("status"))
        for k, v in manifest.get("steps", manifest).items()
    }
    text = log.read_text(errors="replace")
    noise = [line for line in text.splitlines() if NOISE.search(line)]
    return {
        "returncode": child.returncode,
        "wall_s": wall,
        "peak_rss_tree_gb": peak_tree / 1e9,
        "peak_rss_process_gb": peak_one / 1e9,
        "peak_rss_tree_gb_by_step": {k: round(v / 1e9, 2) for k, v in by_step.items()},
        "steps_s": steps,
        "noise_lines": noise[:20],
        "log_lines": len(text.splitlines()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--keep", action="store_true", help="keep --out: steps whose settings did not change are reused"
    )
    ap.add_argument("extra", nargs="*", help="more `cadre demo` options (after --)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    runs = [run_once(args.out, args.fast, args.extra, keep=args.keep) for _ in range(args.repeats)]
    result = {
        "mode": "fast" if args.fast else "full",
        "load_average_at_start": load,
        "cores": len(os.sched_getaffinity(0)),
        "runs": runs,
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "peak_rss_tree_gb_max": max(r["peak_rss_tree_gb"] for r in runs),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for r in runs:
        print(
            f"exit {r['returncode']}  wall {r['wall_s']:.0f} s  peak RSS {r['peak_rss_tree_gb']:.2f} GB "
            f"(largest process {r['peak_rss_process_gb']:.2f} GB)  noise lines {len(r['noise_lines'])}"
        )
        for k, v in r["steps_s"].items():
            print(f"  {k:20} {v:>8} s")
        for line in r["noise_lines"]:
            print(f"  noise: {line[:160]}")
    print(f"load average at start {load:.1f}; median wall {result['wall_s_median']:.0f} s")


if __name__ == "__main__":
    main()
