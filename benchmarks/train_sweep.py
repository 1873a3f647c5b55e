"""Accuracy vs training minutes for `cadre train` settings on real data, measured through the portable path.

Task: HWU64 intents (Liu et al., IWSDS 2019, arXiv:1903.05566; CC BY 4.0), read from a path given on the
command line (the data is not part of cadre): a seeded choice of 10 intents, 60 training utterances each, and
the real test split of those intents (a seeded sample of ``--test`` items). Every example carries a system
prompt listing the 10 intent names, as a user's data file would.

Each variant runs `cadre train` (a subprocess, `--json`) → `cadre export --format gguf-adapter` → plain
llama-cpp-python: ``Llama(model_path=<bundled SmolLM2-135M GGUF>, lora_path=<adapter>)`` and
``create_chat_completion`` with the test messages exactly as in the data file, greedy, exact label match.

    python benchmarks/train_sweep.py --hwu64 ../shared/datasets/hwu64 --budget 3m \\
        --variant lr=2e-4 --variant lr=1e-3 --variant lr=1e-3,share_prefix=false

A variant is ``field=value[,field=value...]`` over `cadre train` options (``lr``, ``rank``, ``alpha``,
``target_modules`` as ``q_proj+v_proj``, ``epochs``, ``share_prefix``, ``batch_size``...). Results are printed
as a Markdown table and appended as JSON lines to ``--results``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def hwu64_task(folder: Path, seed: int, n_intents: int, per_intent: int, n_test: int) -> tuple[list, list]:
    """(train rows, test rows) as chat messages with a system prompt listing the chosen intents."""

    def read(name: str) -> list[dict[str, str]]:
        with (folder / name).open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    train_rows, test_rows = read("train.csv"), read("test.csv")
    rng = random.Random(seed)
    intents = sorted(rng.sample(sorted({r["intent"] for r in train_rows}), n_intents))
    system = (
        "Classify the user's request into exactly one of these intents: "
        + ", ".join(intents)
        + ". Answer with the intent name only."
    )

    def chat(r: dict[str, str]) -> dict:
        return {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": r["text"]},
                {"role": "assistant", "content": r["intent"]},
            ]
        }

    train = []
    for intent in intents:
        pool = [r for r in train_rows if r["intent"] == intent]
        train += [chat(r) for r in rng.sample(pool, min(per_intent, len(pool)))]
    rng.shuffle(train)
    test = [chat(r) for r in test_rows if r["intent"] in intents]
    test = rng.sample(test, min(n_test, len(test)))
    return train, test


def cadre(*args: str) -> dict:
    code = "import sys; from cadre.cli.main import main; sys.argv = ['cadre', *sys.argv[1:]]; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"cadre {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def llama_accuracy(adapter: Path | None, test: list[dict], threads: int) -> tuple[float, float]:
    """(exact-label accuracy, seconds) through llama-cpp-python on the bundled base."""
    from llama_cpp import Llama

    sys.path.insert(0, str(REPO / "src"))
    from cadre.runtime import bundled_model_path

    llm = Llama(
        model_path=str(bundled_model_path("smollm2-135m")),
        lora_path=str(adapter) if adapter else None,
        n_ctx=512,
        n_threads=threads,
        verbose=False,
    )
    t0 = time.perf_counter()
    right = 0
    for row in test:
        msgs = row["messages"][:-1]
        out = llm.create_chat_completion(messages=msgs, temperature=0.0, max_tokens=24)
        answer = (out["choices"][0]["message"]["content"] or "").strip()
        right += answer == row["messages"][-1]["content"]
    return right / len(test), time.perf_counter() - t0


def parse_variant(text: str) -> list[str]:
    flags: list[str] = []
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        key = key.strip().replace("_", "-")
        if key == "target-modules":
            value = value.replace("+", ",")
        if value.lower() in {"true", "false"}:
            flags.append(f"--{key}" if value.lower() == "true" else f"--no-{key}")
        else:
            flags += [f"--{key}", value]
    return flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hwu64", type=Path, required=True, help="folder with train.csv and test.csv")
    ap.add_argument("--budget", default="3m")
    ap.add_argument("--variant", action="append", default=[], help="field=value,... (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="picks the intents and the examples")
    ap.add_argument("--test", type=int, default=200, help="test items (a seeded sample of the real split)")
    ap.add_argument("--threads", type=int, default=2, help="training threads")
    ap.add_argument(
        "--eval-threads",
        type=int,
        default=1,
        help="llama.cpp threads (1: its spinning threads suffer most on a shared machine)",
    )
    ap.add_argument("--base-only", action="store_true", help="also measure the untouched base")
    ap.add_argument("--results", type=Path, default=Path("train_sweep.jsonl"))
    args = ap.parse_args()

    train, test = hwu64_task(args.hwu64, args.seed, 10, 60, args.test)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
        if args.base_only:
            acc, secs = llama_accuracy(None, test, args.eval_threads)
            rows.append({"variant": "untouched base", "accuracy": acc, "eval_seconds": round(secs, 1)})
            print(json.dumps(rows[-1]), flush=True)
        for i, variant in enumerate(args.variant or [""]):
            out = Path(tmp) / f"run{i}"
            t0 = time.perf_counter()
            m = cadre(
                "train", "--data", str(data), "--out", str(out), "--budget", args.budget,
                "--threads", str(args.threads), "--json", *parse_variant(variant),
            )  # fmt: skip
            train_wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            exported = cadre("export", str(out), "--format", "gguf-adapter", "--json")
            export_seconds = time.perf_counter() - t0
            acc, eval_seconds = llama_accuracy(Path(exported["path"]), test, args.eval_threads)
            row = {
                "variant": variant or "defaults",
                "budget": args.budget,
                "accuracy": acc,
                "test_items": len(test),
                "epochs": round(m["epochs"], 2),
                "steps": m["steps"],
                "stopped": m["stopped"],
                "train_seconds": m["train_seconds"],
                "cadre_train_wall_seconds": round(train_wall, 1),
                "phase_seconds": m.get("seconds"),
                "tokens_per_second": round(m["tokens_per_second"], 1),
                "examples_per_second": round(m["train_examples"] * m["epochs"] / m["train_seconds"], 2),
                "export_seconds": round(export_seconds, 1),
                "eval_seconds": round(eval_seconds, 1),
                "load_average": os.getloadavg()[0],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            with args.results.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({**row, "seed": args.seed}) + "\n")
    print("\n| variant | budget | accuracy | epochs | train s | examples/s | load avg |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r.get('budget', '')} | {r['accuracy']:.3f} | {r.get('epochs', '')} | "
            f"{r.get('train_seconds', '')} | {r.get('examples_per_second', '')} | {r.get('load_average', 0):.1f} |"
        )


if __name__ == "__main__":
    main()
