"""Per-request routing latency of each encoder form, with the plain-kNN peer in the same run (HWU64 utterances).

    PYTHONPATH=src .venv/bin/python benchmarks/route_latency.py --data ../shared/datasets/hwu64 \
        [--requests 200] [--rounds 5] [--seed 0] [--json out.json]

One router per encoder form (``RouterSpec`` ``embedding_runtime`` x ``embedding_precision`` x ``max_seq_length``;
frozen MiniLM, every other setting default) is fitted on 60 training utterances per domain of 14 HWU64 domains (4 held out, as in
``route_real.py``); each router routes ``--requests`` test utterances one at a time (``router.route(text)``:
tokenise, embed, head, gate), one torch thread. The peer is the plain kNN router of ``route_peers.py``
(sentence-transformers ``encode`` of the same MiniLM + a dot product), the way the issue measured it. Rounds are
interleaved (every router and the peer in each round, in a rotating order), so a busy moment of the shared
machine hits all of them; the table gives the median over rounds of each one's wall-clock p50 and p99, its CPU
time per request p50 / p99 (the calling thread's ``time.thread_time``: what one core spends on a request, without
the waiting a loaded machine adds; torch and ONNX Runtime both run on that thread), the ratio of its wall p99 to
the peer's in the same round (median), and the form's routing quality on the test split (domain accuracy,
OOD AUROC, OOS recall, in-scope kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FORMS = (
    ("torch", "fp32", None),
    ("torch", "fp32", 32),
    ("torch", "int8", None),
    ("onnx", "fp32", None),
    ("onnx", "int8", None),
    ("onnx", "int8", 32),
)


def _times(route_one: Any, texts: list[str]) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for t in texts:
        c0, t0 = time.thread_time(), time.perf_counter()
        route_one(t)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/hwu64"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-quality", action="store_true", help="skip routing the whole test split per form")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from cadre.route import fit_router
    from cadre.runtime.embeddings import get_embedder
    from route_peers import KNNPeer
    from route_real import make_split, read_split, summarise

    torch.set_num_threads(1)
    train, test = read_split(args.data / "train.csv"), read_split(args.data / "test.csv")
    held, tr, te = make_split(train, test, seed=args.seed, held_out=4, per_domain=60)
    rng = np.random.default_rng(args.seed)
    texts = [te[i].text for i in rng.permutation(len(te))[: args.requests]]
    st = get_embedder()
    peer = KNNPeer(st, [ex.text for ex in tr], [ex.route for ex in tr])
    systems: dict[str, Any] = {"plain-kNN peer (sentence-transformers encode)": peer.route}
    quality: dict[str, dict[str, Any]] = {}
    for runtime, precision, length in FORMS:
        name = f"cadre {runtime}-{precision}/" + (f"len{length}" if length else "full")
        router = fit_router(
            tr,
            embedding_runtime=runtime,
            embedding_precision=precision,
            max_seq_length=length,
            seed=args.seed,
        )
        if not args.no_quality:
            quality[name] = summarise(router.route_batch([ex.text for ex in te]), te)
        systems[name] = router.route
        print(f"fitted {name}: {router.embedder.model_id}", flush=True)
    per: dict[str, dict[str, list[float]]] = {
        n: {"p50": [], "p99": [], "cpu_p50": [], "cpu_p99": [], "ratio": []} for n in systems
    }
    names = list(systems)
    for r in range(args.rounds):
        for t in texts[:10]:
            for fn in systems.values():
                fn(t)  # warm-up
        order = names[r % len(names) :] + names[: r % len(names)]
        round_p99: dict[str, float] = {}
        for n in order:
            ms, cpu = _times(systems[n], texts)
            per[n]["p50"].append(float(np.percentile(ms, 50)))
            per[n]["cpu_p50"].append(float(np.percentile(cpu, 50)))
            per[n]["cpu_p99"].append(float(np.percentile(cpu, 99)))
            round_p99[n] = float(np.percentile(ms, 99))
            per[n]["p99"].append(round_p99[n])
        for n in names:
            per[n]["ratio"].append(round_p99[n] / round_p99[names[0]])
        print(
            f"round {r}: " + ", ".join(f"{n.split()[-1]} p99 {round_p99[n]:.1f}" for n in names), flush=True
        )
    load = os.getloadavg()
    print(
        f"\nHWU64 seed {args.seed} (held out {held}); {len(texts)} requests x {args.rounds} rounds; load {load}"
    )
    print(
        f"{'system':48s} {'p50 ms':>7s} {'p99 ms':>7s} {'p99/peer':>8s}  quality (domain acc / AUROC / OOS rec / kept)"
    )
    rows = {}
    for n in names:
        row = {k: float(np.median(v)) for k, v in per[n].items()}
        q = quality.get(n, {})
        rows[n] = row | {k: q.get(k) for k in ("domain_accuracy", "ood_auroc", "oos_recall", "in_scope_kept")}
        qs = " / ".join(
            "  n/a" if q.get(k) is None else f"{q[k]:.3f}"
            for k in ("domain_accuracy", "ood_auroc", "oos_recall", "in_scope_kept")
        )
        print(
            f"{n:48s} {row['p50']:7.2f} {row['p99']:7.2f} {row['cpu_p50']:7.2f} {row['cpu_p99']:7.2f} "
            f"{row['ratio']:8.2f}  {qs}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"load": load, "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2
            )
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
