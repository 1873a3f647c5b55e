"""Routing on real traffic: the open-intent protocol on HWU64 (real utterances, 18 domains, CC BY 4.0).

    PYTHONPATH=src .venv/bin/python benchmarks/route_real.py --data ../shared/datasets/hwu64 \
        [--seeds 0 1 2] [--per-domain 60] [--held-out 4] [--options frozen-auto,finetuned] [--latency 200] \
        [--semantic-router /path/with/semantic_router] [--json out.json]

Protocol (as open-intent detection papers do it, e.g. Zhang et al. 2021 "Deep Open Intent Classification with
Adaptive Decision Boundary"): per seed, 4 domains chosen at random are held out entirely: they never appear in
training and their test utterances are the out-of-scope requests (label: generalist). The remaining domains are
the routes, trained on ``--per-domain`` examples each drawn from the train split (``0`` = all), tested on the
whole test split. No out-of-scope example is used in training.

Reported per option (mean over seeds, and per seed): ``domain_accuracy`` (in scope, gate ignored),
``oos_recall`` / ``oos_precision`` at the router's own threshold, ``in_scope_kept`` (share of in-scope requests
that reach a specialist), ``ood_auroc``, ``fpr95``, ``accuracy`` (every request, out-of-scope ones right when
sent to the generalist). Every option sees the same train/test texts; embeddings of the frozen encoder are
computed once and shared. Peers in the same run: plain kNN over the same MiniLM (label of the most similar
training example, that similarity as the in-domain score, threshold at the 5th percentile of leave-one-out
similarities) and, with ``--semantic-router``, semantic-router's ``IndexedRouter`` on the same MiniLM.

Latency (``--latency N``): single requests, one torch thread, embedding included, on N test utterances.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# name -> RouterSpec overrides (cadre's options)
OPTIONS: dict[str, dict[str, Any]] = {
    "frozen-centroid": {"strategy": "centroid", "ood_score": "knn"},
    "frozen-knn": {"strategy": "knn", "ood_score": "knn"},
    "frozen-linear": {"strategy": "linear", "ood_score": "knn"},
    "frozen-auto/gate-knn": {"ood_score": "knn"},
    "frozen-auto/gate-mahalanobis": {"ood_score": "mahalanobis"},
    "frozen-auto/gate-energy": {"ood_score": "energy"},
    "frozen-auto/gate-knn+energy": {"ood_score": "knn+energy"},
    "frozen-auto/gate-knn+mahalanobis+energy": {"ood_score": "knn+mahalanobis+energy"},
    "frozen-auto/gate-auto": {"ood_score": "auto"},
    "finetuned/gate-auto": {"encoder": "finetuned", "finetune_pairs": 1000},
    "auto-encoder/gate-auto": {"encoder": "auto", "finetune_pairs": 1000},
    "cadre-default": {},
}
METRICS = (
    "domain_accuracy",
    "oos_recall",
    "oos_precision",
    "in_scope_kept",
    "ood_auroc",
    "fpr95",
    "accuracy",
)


def read_split(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [(row["text"].strip(), row["domain"]) for row in csv.DictReader(fh) if row["text"].strip()]


def make_split(
    train: list[tuple[str, str]], test: list[tuple[str, str]], *, seed: int, held_out: int, per_domain: int
):  # type: ignore[no-untyped-def]
    from cadre.route.data import Example

    rng = np.random.default_rng(seed)
    domains = sorted({d for _, d in train})
    held = sorted(rng.choice(domains, size=held_out, replace=False).tolist())
    tr: list[Example] = []
    for d in domains:
        if d in held:
            continue
        texts = list(dict.fromkeys(t for t, dd in train if dd == d))
        if per_domain and len(texts) > per_domain:
            texts = [texts[i] for i in sorted(rng.choice(len(texts), size=per_domain, replace=False))]
        tr += [Example(text=t, route=d) for t in texts]
    te = [Example(text=t, route=None if d in held else d) for t, d in test]
    return held, tr, te


def knn_peer(embedder: Any, train: list[Any], test: list[Any]) -> dict[str, Any]:
    from cadre.route.protocol import GENERALIST, RouteDecision

    x = embedder.encode([ex.text for ex in train])
    y = [ex.route for ex in train]
    sims = x @ x.T
    np.fill_diagonal(sims, -1.0)
    threshold = float(np.percentile(sims.max(axis=1), 5))
    s = embedder.encode([ex.text for ex in test]) @ x.T
    decisions = []
    for row in s:
        i = int(row.argmax())
        route = y[i] if row[i] >= threshold else GENERALIST
        decisions.append(
            RouteDecision(route=route, score=float(row[i]), scores={y[i]: 1.0}, in_domain=float(row[i]))
        )
    return summarise(decisions, test)


def semantic_router_peer(embedder: Any, train: list[Any], test: list[Any]) -> dict[str, Any]:
    from cadre.route.protocol import GENERALIST, RouteDecision
    from route_peers import SemanticRouterPeer

    peer = SemanticRouterPeer(embedder, [ex.text for ex in train], [ex.route for ex in train])
    decisions = []
    for ex in test:
        route, score, best = peer.route(ex.text)
        decisions.append(RouteDecision(route=route or GENERALIST, score=score, scores={best: 1.0}))
    return summarise(decisions, test)


def summarise(decisions: list[Any], test: list[Any]) -> dict[str, Any]:
    from cadre.route.evaluation import open_intent_metrics

    m = open_intent_metrics(decisions, test)
    truth = [ex.route or "generalist" for ex in test]
    m["accuracy"] = float(np.mean([t == d.route for t, d in zip(truth, decisions)]))
    m.pop("accuracy_vs_oos_recall", None)
    return m


def latency(route_one: Any, texts: list[str]) -> dict[str, float]:
    for t in texts[:5]:
        route_one(t)  # warm-up
    ms = []
    for t in texts:
        t0 = time.perf_counter()
        route_one(t)
        ms.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/hwu64"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--held-out", type=int, default=4)
    ap.add_argument("--per-domain", type=int, default=60)
    ap.add_argument("--options", default=",".join(OPTIONS), help=f"comma-separated, of: {', '.join(OPTIONS)}")
    ap.add_argument("--latency", type=int, default=0, help="time N single requests per option (0 = skip)")
    ap.add_argument("--semantic-router", type=Path, default=None, help="folder to append to sys.path for it")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from cadre.route import fit_router
    from cadre.runtime.embeddings import get_embedder
    from route_peers import MemoEmbedder

    torch.set_num_threads(1)
    if args.semantic_router:
        sys.path.append(str(args.semantic_router))
    train, test = read_split(args.data / "train.csv"), read_split(args.data / "test.csv")
    base = get_embedder()
    memo = MemoEmbedder(base)
    names = [n.strip() for n in args.options.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        raise SystemExit(f"unknown options {unknown}; choose from {list(OPTIONS)}")
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        held, tr, te = make_split(train, test, seed=seed, held_out=args.held_out, per_domain=args.per_domain)
        n_oos = sum(ex.route is None for ex in te)
        print(
            f"seed {seed}: held out {held}; train {len(tr)}; test {len(te) - n_oos} in scope + {n_oos} OOS",
            flush=True,
        )
        t0 = time.perf_counter()
        rows.setdefault("plain-kNN (peer)", []).append(knn_peer(memo, tr, te) | {"fit_s": 0.0})
        if args.latency:
            rows["plain-kNN (peer)"][-1].update(
                latency(lambda t: base.encode([t]), [ex.text for ex in te[: args.latency]])
            )
        print(
            f"  plain-kNN {_line(rows['plain-kNN (peer)'][-1])}  ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
        if args.semantic_router:
            try:
                rows.setdefault("semantic-router (peer)", []).append(semantic_router_peer(memo, tr, te))
                print(f"  semantic-router {_line(rows['semantic-router (peer)'][-1])}", flush=True)
            except Exception as err:
                print(f"  semantic-router failed: {type(err).__name__}: {err}", flush=True)
        for name in names:
            t0 = time.perf_counter()
            router = fit_router(tr, embedder=memo, seed=seed, **OPTIONS[name])
            fit_s = time.perf_counter() - t0
            decisions = router.route_batch([ex.text for ex in te])
            res = summarise(decisions, te) | {"fit_s": fit_s, "chosen": router.report.get("strategy")}
            res["encoder"] = router.report.get("encoder", {}).get("chosen", "frozen")
            res["ood_score"] = router.report.get("ood_score")
            if args.latency:
                if router.embedder is memo:  # time the real encoder, not the cache
                    router.embedder = base
                res.update(latency(router.route, [ex.text for ex in te[: args.latency]]))
                res["latency_vs_plain_knn_p99"] = res["p99_ms"] / rows["plain-kNN (peer)"][-1]["p99_ms"]
            rows.setdefault(name, []).append(res)
            print(
                f"  {name} {_line(res)}  (fit {fit_s:.0f}s, {res['chosen']}, {res['encoder']}, {res['ood_score']})",
                flush=True,
            )
    summary = {
        name: {k: _mean([r.get(k) for r in rs]) for k in (*METRICS, "fit_s", "p50_ms", "p99_ms")}
        for name, rs in rows.items()
    }
    print(
        f"\nmean over seeds {args.seeds} ({args.held_out} domains held out, {args.per_domain or 'all'} per domain)"
    )
    for name, m in summary.items():
        print(f"{name:32s} {_line(m)}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "mean": summary, "per_seed": rows},
                indent=2,
            )
        )


def _mean(vals: list[Any]) -> float | None:
    v = [x for x in vals if isinstance(x, int | float)]
    return float(np.mean(v)) if v else None


def _line(m: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "  n/a" if v is None else f"{v:.3f}"

    out = " ".join(f"{k[:12]}={f(m.get(k))}" for k in METRICS)
    if m.get("p99_ms") is not None:
        out += f" p50={m['p50_ms']:.1f}ms p99={m['p99_ms']:.1f}ms"
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
