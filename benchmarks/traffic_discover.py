"""Task discovery on 10,000 captured requests: clustering quality (adjusted Rand index against the generator's
task labels) and time (embedding, clustering with k chosen by silhouette), plus export time for one task.

Traffic: cadre.synth's four generators (intents, invoices, normalize, out_of_scope), 2,500 requests each,
interleaved, written to a fresh traffic store with the generator's answers as the generalist's.

    PYTHONPATH=src python benchmarks/traffic_discover.py [--n 10000] [--k-range 2-12] [--encoder torch-int8/len128]
        [--threads 2] [--criterion prediction_strength] [--json out.json]

``--encoder``: the form of MiniLM discovery embeds with (as ``cadre traffic tasks --encoder``); default: as is.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from sklearn.metrics import adjusted_rand_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--k-range", default="2-12")
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--criterion", default="calinski_harabasz", help="how k is chosen (cadre traffic tasks --criterion)"
    )
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from cadre.synth import generate, get_generator
    from cadre.traffic import TrafficRecord, TrafficStore, discover_tasks, export_task

    tasks = ("intents", "invoices", "normalize", "out_of_scope")
    per = {t: list(generate(get_generator(t), split="train", n=args.n // 4, seed=3)) for t in tasks}
    records, truth = [], []
    for i in range(args.n // 4):
        for t in tasks:
            rec = per[t][i]
            user = next(m["content"] for m in rec["messages"] if m["role"] == "user")
            records.append(
                TrafficRecord(
                    f"{t}-{i}",
                    "chat",
                    "auto",
                    "generalist",
                    [{"role": "user", "content": user}],
                    str(rec["answer"]),
                    prompt_tokens=len(user) // 4,
                    completion_tokens=8,
                )
            )
            truth.append(t)
    lo, hi = (int(x) for x in args.k_range.split("-"))
    report: dict[str, object] = {
        "load_average": os.getloadavg(),
        "requests": len(records),
        "encoder": args.encoder or "sentence-transformers fp32",
        "threads": args.threads,
        "criterion": args.criterion,
    }
    embedder = None
    if args.encoder:
        from cadre.route import EncoderForm, get_route_embedder

        head, _, length = args.encoder.partition("/")
        runtime, _, precision = head.partition("-")
        form = EncoderForm(runtime, precision, int(length[3:]) if length else None)
        embedder = get_route_embedder(form=form)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "traffic.db"
        with TrafficStore(db, create=True) as store:
            t0 = time.perf_counter()
            store.insert(records)
            report["insert_s"] = round(time.perf_counter() - t0, 2)
        times: dict[str, float] = {}
        last = {"t": time.perf_counter()}

        def progress(what: str, done: int, total: int) -> None:
            if done == total:
                now = time.perf_counter()
                times[f"embed_{what}_s"] = round(now - last["t"], 2)
                last["t"] = now

        t0 = time.perf_counter()
        result = discover_tasks(
            db, k_range=(lo, hi), criterion=args.criterion, on_progress=progress, embedder=embedder
        )
        total = time.perf_counter() - t0
        report.update(times)
        report["discover_total_s"] = round(total, 2)
        report["k"] = result.k
        report["silhouettes"] = {k: round(v, 4) for k, v in result.silhouettes.items()}
        report["ari"] = round(adjusted_rand_score(truth, result.labels), 4)
        report["tasks"] = [
            {
                "task": t.task,
                "requests": t.requests,
                "cost_share": round(t.cost_share, 3),
                "answer_agreement": round(t.answer_agreement, 3),
                "example": t.examples[0][:80],
            }
            for t in result.tasks
        ]
        if not args.skip_export:
            t0 = time.perf_counter()
            exported = export_task(db, task=0, out=Path(tmp) / "out")
            report["export_task0_s"] = round(time.perf_counter() - t0, 2)
            report["export_counts"] = exported.counts
            report["export_groups"] = exported.groups
    report["load_average_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
