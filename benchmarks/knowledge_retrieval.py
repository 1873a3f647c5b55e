"""Knowledge benchmark: indexing throughput, query latency and recall@k on PubMedQA (question → its abstract).

Each PubMedQA item's abstract (its CONTEXTS paragraphs) becomes one JSONL record; its question is a query whose
only relevant document is that abstract (a hit when any of the top-k chunks comes from it). The same corpus is
searched three ways in one run: hybrid (BM25 + dense, reciprocal-rank fusion), BM25 only and dense only.

    .venv/bin/python benchmarks/knowledge_retrieval.py --data ../shared/datasets/pubmedqa/ori_pqal.json

``--chunk-chars`` takes several sizes; the default runs 180 (sentence-sized chunks: ≥ 10,000 chunks for the
throughput and latency figures) and 1000 (the library's default chunking).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cadre.knowledge import ChunkingConfig, LabelledQuery, evaluate_retrieval, open_corpus
from cadre.runtime.embeddings import get_embedder

MODES = ("hybrid", "bm25", "dense")


def _write_records(data: dict[str, Any], path: Path) -> list[LabelledQuery]:
    queries = []
    with path.open("w", encoding="utf-8") as fh:
        for pubid, item in data.items():
            fh.write(json.dumps({"id": pubid, "text": "\n\n".join(item["CONTEXTS"])}) + "\n")
            queries.append(LabelledQuery(item["QUESTION"], {f"{path.resolve()}#{pubid}"}))
    return queries


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_one(records: Path, queries: list[LabelledQuery], *, chunk_chars: int, overlap: int, k: int, workdir: Path,
            latency_queries: int) -> dict[str, Any]:  # fmt: skip
    embedder = get_embedder()
    corpus = open_corpus(
        workdir / f"pubmedqa-{chunk_chars}",
        create=True,
        embedder=embedder,
        chunking=ChunkingConfig(max_chars=chunk_chars, overlap_chars=overlap),
    )
    report = corpus.add([records])
    n_chunks = corpus.store.count()
    t0 = time.perf_counter()
    corpus.search("warm-up query for the BM25 index", k=k)
    bm25_build_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "chunk_chars": chunk_chars,
        "overlap_chars": overlap,
        "chunks": n_chunks,
        "index_seconds": report.seconds,
        "chunks_per_second": report.chunks_per_second,
        "bm25_build_seconds": bm25_build_s,
        "modes": {},
    }
    for mode in MODES:
        rep = evaluate_retrieval(lambda q, kk, m=mode: corpus.search(q, k=kk, mode=m), queries, k=k)  # type: ignore[misc]
        lat = []
        for q in queries[:latency_queries]:
            t = time.perf_counter()
            corpus.search(q.query, k=k, mode=mode)
            lat.append((time.perf_counter() - t) * 1000)
        out["modes"][mode] = {
            f"recall@{k}": rep.recall_at_k,
            f"mrr@{k}": rep.mrr,
            "p50_ms": statistics.median(lat),
            "p99_ms": _percentile(lat, 99),
        }
    corpus.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="PubMedQA ori_pqal.json")
    parser.add_argument("--chunk-chars", type=int, nargs="+", default=[180, 1000])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N items")
    parser.add_argument("--latency-queries", type=int, default=300, help="queries timed per mode")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads (1 is much faster on a busy machine)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    data = json.loads(args.data.read_text(encoding="utf-8"))
    if args.limit:
        data = dict(list(data.items())[: args.limit])
    workdir = Path(tempfile.mkdtemp(prefix="cadre-bench-knowledge-"))
    try:
        records = workdir / "pubmedqa.jsonl"
        queries = _write_records(data, records)
        get_embedder().encode(["warm up"])
        results = []
        for size in args.chunk_chars:
            overlap = min(150, max(0, size // 4 - 5))
            print(
                f"indexing {len(data)} abstracts with chunks of <= {size} chars (overlap {overlap}) ...",
                flush=True,
            )
            results.append(
                run_one(
                    records,
                    queries,
                    chunk_chars=size,
                    overlap=overlap,
                    k=args.k,
                    workdir=workdir,
                    latency_queries=args.latency_queries,
                )
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    k = args.k
    import torch

    print(
        f"\nPubMedQA question -> own abstract, {len(queries)} queries, k={k}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    for r in results:
        print(
            f"\nchunks <= {r['chunk_chars']} chars: {r['chunks']} chunks, indexed in {r['index_seconds']:.1f} s "
            f"= {r['chunks_per_second']:.0f} chunks/s (embedding included); BM25 index built in "
            f"{r['bm25_build_seconds']:.2f} s"
        )
        print(f"  {'mode':<8} {'recall@' + str(k):>10} {'MRR@' + str(k):>8} {'p50 ms':>8} {'p99 ms':>8}")
        for mode, m in r["modes"].items():
            print(
                f"  {mode:<8} {m[f'recall@{k}']:>10.3f} {m[f'mrr@{k}']:>8.3f} {m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f}"
            )
        h, b, d = (r["modes"][m][f"recall@{k}"] for m in MODES)
        print(f"  hybrid/BM25 recall ratio {h / b:.3f}, hybrid/dense recall ratio {h / d:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
