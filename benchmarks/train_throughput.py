"""Training throughput of `cadre train` vs a plain PEFT + HF Trainer loop, SmolLM2-135M, same data, same run.

Both train the same LoRA (r=16, alpha=32, all 7 linear projections) on the bundled SmolLM2-135M-Instruct
(dequantized from its Q4_1 GGUF) with the same assistant-only labels, batch size, learning rate and precision
(bf16 autocast when the CPU has AVX512_BF16/AMX). Each configuration runs in its own subprocess, so its peak
RSS is its own. Throughput = non-padding tokens / summed optimizer-step time, the first step excluded.

    .venv/bin/python benchmarks/train_throughput.py [--steps 10] [--repeats 3] [--examples 400]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def write_data(path: Path, n: int) -> None:
    """Support-intent chat examples from cadre.synth (the demo's task)."""
    from cadre.synth import generate, get_generator

    with path.open("w", encoding="utf-8") as fh:
        for rec in generate(get_generator("intents"), split="train", n=n, seed=0):
            fh.write(json.dumps({"messages": rec["messages"]}) + "\n")


def run_cadre(data: Path, steps: int, batch: int, precision: str) -> dict:
    from cadre.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig.model_validate(
            {
                "data": str(data),
                "out": f"{tmp}/out",
                "max_steps": steps,
                "batch_size": batch,
                "eval_fraction": 0,
                "save_every": 10_000,
                "precision": precision,
            }
        )
        m = train(config, progress=False).metrics
    return {
        "tokens_per_second": m["steady_tokens_per_second"],
        "steps": m["steps"],
        "precision": m["precision"],
    }


def run_hf_trainer(data: Path, steps: int, batch: int, precision: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from cadre.train import TrainConfig
    from cadre.train import data as D
    from cadre.train.base import load_base_model, load_tokenizer, resolve_base
    from cadre.train.loop_parts import cpu_supports_bf16

    ref = resolve_base("smollm2-135m")
    tok = load_tokenizer(ref)
    cfg = TrainConfig.model_validate({"data": str(data), "out": "unused"})
    examples, _ = D.load_examples(data, cfg)
    tokenized, _ = D.tokenize_examples(examples, tok, max_length=512)
    rows = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e), "labels": e.labels} for e in tokenized]

    torch.manual_seed(0)
    model = get_peft_model(
        load_base_model(ref),
        LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS, task_type="CAUSAL_LM"),
    )
    bf16 = precision == "bf16" or (precision == "auto" and cpu_supports_bf16())
    log: list[tuple[float, int]] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            log.append((time.perf_counter() - self.t0, 0))

    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    counted: list[int] = []

    def collate(features):  # type: ignore[no-untyped-def]
        counted.append(sum(len(f["input_ids"]) for f in features))
        return collator(features)

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch,
            max_steps=steps,
            learning_rate=2e-4,
            lr_scheduler_type="cosine",
            warmup_steps=0,
            bf16=bf16,
            use_cpu=True,
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            dataloader_num_workers=0,
            seed=0,
            disable_tqdm=True,
        )
        Trainer(
            model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[StepTimer()]
        ).train()
    tokens = sum(counted[1 : len(log)])
    seconds = sum(s for s, _ in log[1:])
    return {
        "tokens_per_second": tokens / seconds,
        "steps": len(log),
        "precision": "bf16-autocast" if bf16 else "fp32",
    }


def worker(kind: str, data: Path, steps: int, batch: int, precision: str) -> None:
    fn = run_cadre if kind == "cadre" else run_hf_trainer
    out = fn(data, steps, batch, precision)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--worker", choices=["cadre", "hf"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.steps, args.batch, args.precision)
        return

    results: dict[str, list[dict]] = {"cadre": [], "hf": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "intents.jsonl"
        write_data(data, args.examples)
        for r in range(args.repeats):
            for kind in ("cadre", "hf"):  # interleaved, so machine load drifts hit both alike
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    kind,
                    "--data",
                    str(data),
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--precision",
                    args.precision,
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    sys.exit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
                res = json.loads(line[7:])
                results[kind].append(res)
                print(
                    f"repeat {r + 1} {kind:5s}: {res['tokens_per_second']:7.1f} tok/s, "
                    f"peak RSS {res['peak_rss_mb']:.0f} MB ({res['precision']})",
                    flush=True,
                )

    def med(kind: str, key: str) -> float:
        return statistics.median(x[key] for x in results[kind])

    ours, peer = med("cadre", "tokens_per_second"), med("hf", "tokens_per_second")
    print()
    print(
        f"SmolLM2-135M LoRA r=16 (7 modules), batch {args.batch}, {args.steps} steps, median of {args.repeats}:"
    )
    print(f"  cadre train            {ours:7.1f} tokens/s   peak RSS {med('cadre', 'peak_rss_mb'):6.0f} MB")
    print(f"  PEFT + HF Trainer      {peer:7.1f} tokens/s   peak RSS {med('hf', 'peak_rss_mb'):6.0f} MB")
    print(f"  ratio                  {ours / peer:7.2f}x   (target: >= 250 tokens/s for cadre)")
    print(f"  cpu: {os.cpu_count()} cores; machine load at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
