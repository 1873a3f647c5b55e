"""Routing quality: domain accuracy and out-of-domain AUROC on generated and real multi-domain sets, vs a peer.

    .venv/bin/python benchmarks/route_accuracy.py \
        [--gsm8k ../shared/datasets/gsm8k/train.jsonl --pubmedqa ../shared/datasets/pubmedqa/ori_pqal.json] \
        [--precision fp32|bf16|int8] [--peer auto|semantic-router|knn] [--json]

Experiments (targets: domain accuracy >= 0.95, OOD AUROC >= 0.90):

- ``generated``: ``cadre.synth`` intents / invoices / normalize as routes + generated out-of-scope requests
  (train has some out-of-scope examples); ``generated-no-oos``: the same without out-of-scope training examples.
- ``real-2domain``: gsm8k problems (``math``) vs PubMedQA questions (``biomed``) as routes; out-of-scope = the
  generated out-of-scope requests (never seen in training).
- ``real-heldout-<domain>``: the generated routes + one real domain as routes; the other real domain, never seen in
  training, is the out-of-scope set (leave-one-domain-out).

Every cadre strategy (and ``auto``) and the peer see the same train/test texts and the same embeddings; the peer
(which has no cross-fitting) calibrates its threshold on a held-out validation split of the training domains.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _real_domains(
    gsm8k: Path, pubmedqa: Path, n_train: int, n_test: int, seed: int, n_val: int = 50
) -> dict[str, tuple[list, list, list]]:
    from cadre.route.data import Example

    rng = random.Random(seed)
    math_q = [
        json.loads(line)["question"]
        for line in gsm8k.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    bio_q = [v["QUESTION"] for v in json.loads(pubmedqa.read_text(encoding="utf-8")).values()]
    out = {}
    for name, qs in (("math", math_q), ("biomed", bio_q)):
        qs = list(dict.fromkeys(q.strip() for q in qs if q.strip()))
        rng.shuffle(qs)
        if len(qs) < n_train + n_test + n_val:
            raise SystemExit(f"{name}: only {len(qs)} questions, need {n_train + n_test + n_val}")
        out[name] = (
            [Example(text=q, route=name) for q in qs[:n_train]],
            [Example(text=q, route=name) for q in qs[n_train : n_train + n_test]],
            [Example(text=q, route=name) for q in qs[n_train + n_test : n_train + n_test + n_val]],
        )
    return out


def _peer_scores(peer: Any, test: list) -> dict[str, float | None]:
    from cadre.route.evaluation import auroc

    outs = [peer.route(ex.text) for ex in test]
    ins = [ex for ex in test if ex.route is not None]
    top_ok = [o[2] == ex.route for o, ex in zip(outs, test) if ex.route is not None]
    acc = np.mean([(o[0] or None) == ex.route for o, ex in zip(outs, test)])
    return {
        "domain_accuracy": float(np.mean(top_ok)) if ins else None,
        "accuracy": float(acc),
        "ood_auroc": auroc([o[1] for o in outs], [ex.route is not None for ex in test]),
    }


def run_experiment(
    name: str, train: list, test: list, embedder: Any, args: argparse.Namespace, calib: list
) -> dict:
    from cadre.route import fit_router
    from cadre.route.evaluation import evaluate_router
    from route_peers import make_peer  # type: ignore[import-not-found]

    embedder.encode([ex.text for ex in train + test + calib])  # one batched pass fills the cache
    rows: dict[str, Any] = {}
    for strategy in ("auto", "centroid", "knn", "linear"):
        router = fit_router(train, embedder=embedder, strategy=strategy, embedding_precision=args.precision)
        rep = evaluate_router(router, test, batch_throughput=False)
        rows[f"cadre-{strategy}" + (f" ({router.kind})" if strategy == "auto" else "")] = {  # type: ignore[attr-defined]
            "domain_accuracy": rep.domain_accuracy,
            "accuracy": rep.accuracy,
            "ood_auroc": rep.ood_auroc,
            "generalist_share": rep.generalist_share,
            "abstention_recall": rep.abstention_recall,
            "abstention_precision": rep.abstention_precision,
        }
    peer = make_peer(args.peer, embedder, [ex.text for ex in train], [ex.route for ex in train], calib)
    rows[f"peer: {peer.name}"] = _peer_scores(peer, test)
    n_in = sum(ex.route is not None for ex in test)
    return {
        "experiment": name,
        "train": len(train),
        "test_in_scope": n_in,
        "test_out_of_scope": len(test) - n_in,
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gsm8k", type=Path)
    ap.add_argument("--pubmedqa", type=Path)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"])
    ap.add_argument("--peer", default="auto", choices=["auto", "semantic-router", "knn"])
    ap.add_argument("--n-train", type=int, default=150, help="training examples per route")
    ap.add_argument("--n-test", type=int, default=200, help="test examples per route")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from cadre.route.data import load_examples
    from cadre.route.encoders import get_route_embedder
    from cadre.synth import write_router_data
    from route_peers import MemoEmbedder  # type: ignore[import-not-found]

    embedder = MemoEmbedder(get_route_embedder(precision=args.precision))
    tmp = Path(tempfile.mkdtemp(prefix="route-acc-"))
    per = {"train": args.n_train, "validation": 50, "test": args.n_test}
    oos = {"train": args.n_train // 2, "validation": 50, "test": args.n_test}
    files = write_router_data(
        ["intents", "invoices", "normalize"], tmp, n_per_task=per, n_oos=oos, seed=args.seed
    )
    g_train, g_val, g_test = (load_examples(files[s]) for s in ("train", "validation", "test"))
    results = [
        run_experiment("generated", g_train, g_test, embedder, args, g_val),
        run_experiment(
            "generated-no-oos",
            [ex for ex in g_train if ex.route is not None],
            g_test,
            embedder,
            args,
            [ex for ex in g_val if ex.route is not None],
        ),
    ]
    if args.gsm8k and args.pubmedqa:
        real = _real_domains(args.gsm8k, args.pubmedqa, args.n_train, args.n_test, args.seed)
        g_oos_test = [ex for ex in g_test if ex.route is None]
        g_in_train = [ex for ex in g_train if ex.route is not None]
        g_in_test = [ex for ex in g_test if ex.route is not None]
        results.append(
            run_experiment(
                "real-2domain",
                real["math"][0] + real["biomed"][0],
                real["math"][1] + real["biomed"][1] + g_oos_test,
                embedder,
                args,
                real["math"][2] + real["biomed"][2],
            )
        )
        for held, kept in (("biomed", "math"), ("math", "biomed")):
            from cadre.route.data import Example

            results.append(
                run_experiment(
                    f"real-heldout-{held}",
                    g_in_train + real[kept][0],
                    g_in_test + real[kept][1] + [Example(text=ex.text, route=None) for ex in real[held][1]],
                    embedder,
                    args,
                    [ex for ex in g_val if ex.route is not None] + real[kept][2],
                )
            )
    if args.json:
        print(json.dumps({"precision": args.precision, "results": results}, indent=2))
        return
    for res in results:
        print(
            f"\n== {res['experiment']}: train {res['train']}, test {res['test_in_scope']} in scope + "
            f"{res['test_out_of_scope']} out of scope (embeddings {args.precision})"
        )
        print(f"{'router':44s} {'domain acc':>10s} {'accuracy':>9s} {'OOD AUROC':>9s}")
        for name, r in res["rows"].items():

            def f(v: float | None) -> str:
                return "n/a" if v is None else f"{v:.3f}"

            print(
                f"{name[:44]:44s} {f(r['domain_accuracy']):>10s} {f(r['accuracy']):>9s} {f(r['ood_auroc']):>9s}"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
