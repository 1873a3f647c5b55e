"""Training speed with and without the shared prompt prefix (``share_prefix``), same batches, same process.

Data: HWU64 (``--hwu64 DIR``, Liu et al. 2019, CC BY 4.0) as `benchmarks/train_sweep.py` builds it — 10
intents, a system prompt listing them, real utterances. Model: the bundled SmolLM2-135M with cadre's default
LoRA (r=16, all 7 projections) and precision. Each measured micro-batch is run twice in a row, once per
mode, alternating which goes first, so machine load hits both alike; the first pairs are warm-up. Reported:
examples/s and tokens/s (non-padding tokens of the whole examples) per mode, and the median per-pair ratio.

    python benchmarks/train_prefix.py --hwu64 ../shared/datasets/hwu64 [--pairs 8] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from train_tasks import hwu64_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hwu64", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from cadre.train import TrainConfig
    from cadre.train import data as D
    from cadre.train.base import load_base_model, load_tokenizer, resolve_base
    from cadre.train.loop_parts import LabelledTokenLoss, collate, pick_bf16

    torch.set_num_threads(args.threads)
    rows = hwu64_task(args.hwu64, 0, 10, 60, 0).train
    cfg = TrainConfig.model_validate({"data": "unused.jsonl", "out": "unused"})
    chats = [
        D.ChatExample(tuple((m["role"], m["content"]) for m in r["messages"]), f"row {i}")
        for i, r in enumerate(rows)
    ]
    ref = resolve_base(cfg.base)
    tok = load_tokenizer(ref)
    examples, _ = D.tokenize_examples(chats, tok, max_length=cfg.max_length)
    lora = cfg.lora
    model = get_peft_model(
        load_base_model(ref),
        LoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules
        ),
    )
    model.train()
    bf16 = pick_bf16(cfg, "cpu")
    loss_fn = LabelledTokenLoss(model, bf16=bf16, device="cpu")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batches = D.epoch_batches([len(e) for e in examples], args.batch, 0, 0)
    timings: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
    prefix = 0
    for i in range(args.warmup + args.pairs):
        mb = [examples[j] for j in batches[i % len(batches)]]
        for share in (True, False) if i % 2 else (False, True):
            batch = collate(mb, tok.pad_token_id, "cpu", share_prefix=share)
            prefix = max(prefix, batch["prefix_len"])
            t0 = time.perf_counter()
            loss, n = loss_fn(batch)
            (loss / max(1, n)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                timings[share].append((dt, len(mb), int(batch["attention_mask"].sum())))
    mean_len = statistics.mean(len(e) for e in examples)
    out = {"examples": len(examples), "mean_tokens": round(mean_len, 1), "shared_prefix_tokens": prefix}
    for share, rows_ in timings.items():
        secs = sum(t for t, _, _ in rows_)
        out["shared" if share else "full"] = {
            "examples_per_second": round(sum(e for _, e, _ in rows_) / secs, 2),
            "tokens_per_second": round(sum(k for _, _, k in rows_) / secs, 1),
        }
    ratios = [f[0] / s[0] for s, f in zip(timings[True], timings[False], strict=True)]
    out["median_speedup"] = round(statistics.median(ratios), 2)
    out["precision"] = "bf16-autocast" if bf16 else "fp32"
    out["load_average"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
