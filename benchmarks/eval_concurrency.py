"""Specialist vs generalist per demo task: latency and cost per request at several concurrencies.

Uses a finished demo's data and adapters (``--demo-out``, e.g. from ``cadre demo --fast``). Each system is loaded
once; every repeat runs each concurrency level for both systems back to back (peers in the same run), through
``cadre.evaluate.run_eval`` exactly as ``cadre eval`` does. Reported per (task, system, level), medians over the
repeats: latency p50, the machine's seconds per request (busy wall time / requests: what the cost is computed
from), cost per 1,000 requests at ``--price-per-hour``, and the generalist/specialist cost ratio.

    .venv/bin/python benchmarks/eval_concurrency.py --demo-out demo-out --items 16 --levels 1,8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any


def _median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-out", type=Path, required=True, help="a finished demo's folder (data + adapters)")
    ap.add_argument("--tasks", default="intents,invoices,normalize")
    ap.add_argument("--items", type=int, default=16, help="test items per run")
    ap.add_argument("--levels", default="1,8", help="concurrency levels, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shots", type=int, default=None, help="generalist shots (default: the demo's)")
    ap.add_argument("--generalist", default="gemma3-270m")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--price-per-hour", type=float, default=0.10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from cadre.demo.evaluation import task_spec
    from cadre.evaluate import BackendSystem, SystemSpec, run_eval
    from cadre.runtime import load_backend

    demo_cfg = json.loads((args.demo_out / "demo_config.json").read_text())
    shots = demo_cfg["shots"] if args.shots is None else args.shots
    tasks = [t for t in args.tasks.split(",") if t]
    levels = [int(x) for x in args.levels.split(",")]
    load = os.getloadavg()[0]
    opts: dict[str, Any] = {"n_ctx": 2048, "n_threads": args.threads}
    gen_backend = load_backend(args.generalist, **opts)
    adapters = {t: str(args.demo_out / "specialists" / f"{t}.gguf") for t in tasks}
    spec_backend = load_backend(demo_cfg["base"], adapters=adapters, **opts)
    pph = args.price_per_hour
    rows: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    try:
        for rep in range(args.repeats):
            for task in tasks:
                spec = task_spec(task, args.demo_out / "data", shots=shots)
                systems = [
                    BackendSystem(
                        SystemSpec(name="generalist", model=args.generalist, shots=shots, price_per_hour=pph),
                        gen_backend,
                    ),
                    BackendSystem(
                        SystemSpec(
                            name="specialist",
                            model=demo_cfg["base"],
                            adapter=adapters[task],
                            shots=0,
                            price_per_hour=pph,
                        ),
                        spec_backend,
                        adapter=task,
                    ),
                ]
                for level in levels:
                    with tempfile.TemporaryDirectory() as tmp:
                        s = run_eval(
                            spec,
                            systems,
                            tmp,
                            limit=args.items,
                            progress=False,
                            concurrency=level,
                            latency_probe=0,
                        )
                    for name, res in s.systems.items():
                        row = rows.setdefault(
                            (task, name, level), {"p50": [], "spr": [], "cost1k": [], "metric": []}
                        )
                        row["p50"].append(res.latency.p50_s)
                        row["spr"].append(res.cost.seconds_per_request)
                        row["cost1k"].append(res.cost.per_1000)
                        row["metric"].append(res.metric)
                    print(f"repeat {rep + 1} {task} c={level} done", file=sys.stderr, flush=True)
    finally:
        gen_backend.close()
        spec_backend.close()

    out = []
    for (task, name, level), r in rows.items():
        out.append(
            {
                "task": task,
                "system": name,
                "concurrency": level,
                "latency_p50_s": _median(r["p50"]),
                "seconds_per_request": _median(r["spr"]),
                "cost_per_1k_usd": _median(r["cost1k"]),
                "metric": _median(r["metric"]),
            }
        )
    ratios = {}
    for task in tasks:
        for level in levels:
            g = next(
                o for o in out if (o["task"], o["system"], o["concurrency"]) == (task, "generalist", level)
            )
            sp = next(
                o for o in out if (o["task"], o["system"], o["concurrency"]) == (task, "specialist", level)
            )
            if g["cost_per_1k_usd"] and sp["cost_per_1k_usd"]:
                ratios[f"{task}@{level}"] = g["cost_per_1k_usd"] / sp["cost_per_1k_usd"]
    result = {
        "load_average_at_start": load,
        "items": args.items,
        "repeats": args.repeats,
        "price_per_hour": pph,
        "rows": out,
        "generalist_over_specialist_cost": ratios,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"load average at start {load:.1f}; {args.items} items, median of {args.repeats}; ${pph}/h")
    print(f"{'task':10} {'system':11} {'c':>3} {'p50 s':>7} {'s/req':>7} {'$/1k':>8} {'metric':>6}")
    for o in out:
        print(
            f"{o['task']:10} {o['system']:11} {o['concurrency']:>3} {o['latency_p50_s']:7.2f} "
            f"{o['seconds_per_request']:7.3f} {o['cost_per_1k_usd']:8.5f} {o['metric']:6.3f}"
        )
    for k, v in ratios.items():
        print(f"generalist / specialist cost {k}: {v:.2f}x")


if __name__ == "__main__":
    main()
