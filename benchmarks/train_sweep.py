"""Accuracy vs training minutes for `cadre train` settings on real data, measured through the portable path.

Tasks (``benchmarks/train_tasks.py``; the data is read from a path given on the command line and is not part of
cadre): ``hwu64`` intents (10 seeded intents × 60 real utterances, the real test split), ``pubmedqa``
yes/no/maybe (400 seeded training items, question + the start of the abstract) and ``gsm8k`` worked solutions
(400 seeded problems, scored on the number after ``####``). Every example carries a constant system prompt, as
a user's data file would.

Each variant runs `cadre train` (a subprocess, `--json`) → `cadre export --format gguf-adapter` → plain
llama-cpp-python: ``Llama(model_path=<bundled SmolLM2-135M GGUF>, lora_path=<adapter>)`` and
``create_chat_completion`` with the test messages exactly as in the data file (a variant trained with
``constant_system=drop|replace`` is asked as cadre serves it: with the prompt recorded in its adapter), greedy,
scored by the task
(exact label match; GSM8K: the final number). The held-out loss of the kept adapter (``cadre train``'s own
evaluation split) is reported too: on a task the model barely solves it separates settings where accuracy
cannot.

    python benchmarks/train_sweep.py --task pubmedqa --data ../shared/datasets/pubmedqa --budget 2m \\
        --threads 1 --variant lr=2e-4 --variant lr=1e-3
    python benchmarks/train_sweep.py --hwu64 ../shared/datasets/hwu64 --budget 3m   # = --task hwu64 --data ...

A variant is ``field=value[,field=value...]`` over `cadre train` options (``lr``, ``rank``, ``alpha``,
``target_modules`` as ``q_proj+v_proj``, ``epochs``, ``share_prefix``, ``batch_size``...). Results are printed
as a Markdown table and appended as JSON lines to ``--results``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_tasks import TASKS, Task, hwu64_task  # noqa: E402  (hwu64_task: used by train_prefix.py)

__all__ = ["hwu64_task"]


def cadre(*args: str) -> dict:
    code = "import sys; from cadre.cli.main import main; sys.argv = ['cadre', *sys.argv[1:]]; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"cadre {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def llama_accuracy(adapter: Path | None, task: Task, threads: int) -> tuple[float, float]:
    """(accuracy, seconds) through llama-cpp-python on the bundled base, messages as in the data file."""
    from llama_cpp import Llama

    sys.path.insert(0, str(REPO / "src"))
    from cadre.runtime import bundled_model_path
    from cadre.runtime.trained_prompt import read_trained_prompt

    # an adapter trained with its constant system prompt dropped or replaced is asked as cadre serves it (the
    # trained prompt from its metadata); the default (keep) gets the data file's messages untouched
    trained = read_trained_prompt(adapter) if adapter else None
    if trained is not None and trained.mode == "keep":
        trained = None

    llm = Llama(
        model_path=str(bundled_model_path("smollm2-135m")),
        lora_path=str(adapter) if adapter else None,
        n_ctx=1024,
        n_threads=threads,
        verbose=False,
    )
    t0 = time.perf_counter()
    right = 0
    for row in task.test:
        msgs = row["messages"][:-1]
        if trained is not None:
            msgs = trained.apply(msgs)
        out = llm.create_chat_completion(messages=msgs, temperature=0.0, max_tokens=task.max_tokens)
        answer = out["choices"][0]["message"]["content"] or ""
        right += task.score(answer, row["messages"][-1]["content"])
    return right / len(task.test), time.perf_counter() - t0


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
    ap.add_argument("--task", choices=sorted(TASKS), default="hwu64")
    ap.add_argument("--data", type=Path, help="the task's data folder or file")
    ap.add_argument("--hwu64", type=Path, help="same as --task hwu64 --data DIR")
    ap.add_argument("--budget", default="3m", help="cadre train --budget (ignored with --steps)")
    ap.add_argument(
        "--steps",
        type=int,
        help="train exactly this many optimizer steps instead (one held-out evaluation, at the end): the same "
        "work for every variant however loaded the machine is",
    )
    ap.add_argument("--variant", action="append", default=[], help="field=value,... (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="picks the intents and the examples")
    ap.add_argument("--test", type=int, default=200, help="test items (a seeded sample)")
    ap.add_argument("--threads", type=int, default=2, help="training threads")
    ap.add_argument(
        "--eval-threads",
        type=int,
        default=1,
        help="llama.cpp threads (1: its spinning threads suffer most on a shared machine)",
    )
    ap.add_argument("--base-only", action="store_true", help="also measure the untouched base")
    ap.add_argument("--results", type=Path, default=Path("train_sweep.jsonl"))
    ap.add_argument("--keep", type=Path, help="keep the data and the runs (adapters) in this folder")
    args = ap.parse_args()

    if args.hwu64 is not None:
        args.task, args.data = "hwu64", args.hwu64
    if args.data is None:
        ap.error("give --data (the task's data folder or file)")
    task = TASKS[args.task](args.data, args.seed, args.test)
    print(
        f"{args.task}: {len(task.train)} training rows, {len(task.test)} test rows, "
        f"majority-answer accuracy {task.majority:.3f}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        data = Path(tmp) / "train.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in task.train), encoding="utf-8")
        if args.base_only:
            acc, secs = llama_accuracy(None, task, args.eval_threads)
            rows.append(
                {
                    "task": args.task,
                    "variant": "untouched base",
                    "accuracy": acc,
                    "eval_seconds": round(secs, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        for i, variant in enumerate(args.variant or [""]):
            out = Path(tmp) / f"run{i}"
            t0 = time.perf_counter()
            length = (
                ["--max-steps", str(args.steps), "--eval-every", str(args.steps)]
                if args.steps
                else ["--budget", args.budget]
            )
            m = cadre(
                "train", "--data", str(data), "--out", str(out), *length,
                "--threads", str(args.threads), "--json", *parse_variant(variant),
            )  # fmt: skip
            train_wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            exported = cadre("export", str(out), "--format", "gguf-adapter", "--json")
            export_seconds = time.perf_counter() - t0
            acc, eval_seconds = llama_accuracy(Path(exported["path"]), task, args.eval_threads)
            best = m.get("best") or {}
            row = {
                "task": args.task,
                "variant": variant or "defaults",
                "budget": f"{args.steps} steps" if args.steps else args.budget,
                "accuracy": acc,
                "test_items": len(task.test),
                "majority": round(task.majority, 3),
                "heldout_loss": round(best["eval_loss"], 4) if best else None,
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
    print(
        "\n| task | variant | budget | accuracy | held-out loss | epochs | train s | examples/s | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['variant']} | {r.get('budget', '')} | {r['accuracy']:.3f} | "
            f"{r.get('heldout_loss', '')} | {r.get('epochs', '')} | "
            f"{r.get('train_seconds', '')} | {r.get('examples_per_second', '')} | {r.get('load_average', 0):.1f} |"
        )


if __name__ == "__main__":
    main()
