"""The pieces the training loop is built from: device and precision choice, the learning-rate schedule,
batching, the loss on labelled tokens, and greedy answers for evaluation during training."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadre.errors import ConfigError
from cadre.train import data as D
from cadre.train.config import TrainConfig

__all__ = [
    "LabelledTokenLoss",
    "collate",
    "cpu_supports_bf16",
    "generate_answers",
    "lr_at",
    "memory_passes",
    "pass_tokens",
    "pick_bf16",
    "pick_device",
    "shared_prefix",
]


# ------------------------------------------------------------------------------------------------- hardware


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AVX512_BF16 or AMX), per /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def pick_device(config: TrainConfig) -> str:
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def pick_bf16(config: TrainConfig, device: str) -> bool:
    import torch

    if config.precision == "fp32":
        return False
    if config.precision == "bf16":
        return True
    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    return cpu_supports_bf16()


# ------------------------------------------------------------------------------------------------ schedules


def lr_at(step: int, total: int, warmup: int, base: float, kind: str) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then cosine/linear decay or flat.

    Cosine decay as in Loshchilov & Hutter 2017 (SGDR), without restarts, to zero at ``total``.
    """
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "linear":
        return base * (1.0 - progress)
    return base


# -------------------------------------------------------------------------------------------------- batches


MIN_SHARED_PREFIX = 8  # tokens; below this a separate prefix pass costs more than it saves


def shared_prefix(examples: Sequence[D.TokenizedExample]) -> int:
    """Tokens at the start that every example shares and that no loss position needs (0 if under 8).

    Typical: the chat template's opening and a system prompt repeated in every example. The prefix stops
    before the first labelled token of any row minus one (that position's hidden state predicts it).
    """
    if len(examples) < 2:
        return 0
    first = examples[0].input_ids
    n = min(len(e) for e in examples) - 1
    for e in examples:
        labelled = next((i for i, x in enumerate(e.labels) if x != D.IGNORE_INDEX), len(e))
        n = min(n, labelled - 1)
    p = 0
    while p < n and all(e.input_ids[p] == first[p] for e in examples[1:]):
        p += 1
    return p if p >= MIN_SHARED_PREFIX else 0


def pass_tokens(examples: Sequence[D.TokenizedExample], *, share_prefix: bool) -> int:
    """Tokens one forward pass over ``examples`` computes: the shared prefix once, every row's rest padded."""
    p = shared_prefix(examples) if share_prefix else 0
    return p + len(examples) * (max(len(e) for e in examples) - p)


def memory_passes(
    micro_batch: Sequence[int],
    examples: Sequence[D.TokenizedExample],
    max_tokens: int | None,
    *,
    share_prefix: bool,
) -> list[list[int]]:
    """``micro_batch`` (indices into ``examples``) cut, in order, into passes of at most ``max_tokens`` computed
    tokens (:func:`pass_tokens`); a row over the limit is a pass alone."""
    if max_tokens is None:
        return [list(micro_batch)]
    passes: list[list[int]] = []
    current: list[int] = []
    for i in micro_batch:
        rows = [examples[j] for j in (*current, i)]
        if current and pass_tokens(rows, share_prefix=share_prefix) > max_tokens:
            passes.append(current)
            current = []
        current.append(i)
    passes.append(current)
    return passes


def collate(
    examples: Sequence[D.TokenizedExample], pad_id: int, device: str, *, share_prefix: bool = False
) -> dict[str, Any]:
    """Right-padded ids, labels and mask; with ``share_prefix``, ``prefix_len`` for :class:`LabelledTokenLoss`."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), D.IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return {
        "input_ids": ids.to(device),
        "labels": labels.to(device),
        "attention_mask": mask.to(device),
        "prefix_len": shared_prefix(examples) if share_prefix else 0,
    }


class LabelledTokenLoss:
    """Summed token cross-entropy on the labelled positions only (the LM head runs on those rows alone).

    With ``batch["prefix_len"] = P > 0`` the first P tokens (the same in every row) run once, batch 1, and
    their keys/values are repeated for the rows; the rest runs over that cache. The loss and its gradients
    are those of the full batch (the prefix's gradient is the sum over the rows, as the repeat's backward
    gives), for 1/B of the prefix's compute; only LoRA dropout draws one mask for the shared prefix.
    """

    def __init__(self, peft_model: Any, *, bf16: bool, device: str) -> None:
        base = peft_model.get_base_model()
        self.decoder = base.model if hasattr(base, "model") else base.get_decoder()
        self.head = base.get_output_embeddings()
        self.softcap = getattr(base.config, "final_logit_softcapping", None)
        self.bf16 = bf16
        self.device_type = "cuda" if device.startswith("cuda") else "cpu"

    def autocast(self) -> Any:
        import torch

        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def __call__(self, batch: dict[str, Any]) -> tuple[Any, int]:
        import torch
        import torch.nn.functional as F

        p = int(batch.get("prefix_len") or 0)
        targets = batch["labels"][:, p + 1 :]
        keep = targets != D.IGNORE_INDEX
        with self.autocast():
            if p:
                ids = batch["input_ids"]
                cache = self.decoder(input_ids=ids[:1, :p], use_cache=True).cache
                cache.batch_repeat_interleave(ids.shape[0])
                hidden = self.decoder(
                    input_ids=ids[:, p:],
                    attention_mask=batch["attention_mask"],
                    cache=cache,
                    use_cache=True,
                ).last_hidden_state
            else:
                hidden = self.decoder(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
                ).last_hidden_state
            logits = self.head(hidden[:, :-1][keep])  # (n_labelled, vocab)
        logits = logits.float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())


# --------------------------------------------------------------------------------------------- generation


def generate_answers(
    model: Any,
    tokenizer: Any,
    examples: Sequence[D.ChatExample],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    bf16: bool = False,
) -> list[str]:
    """Greedy answers to each example's conversation up to its last assistant turn (batched, left padding)."""
    import torch

    prompts = []
    for ex in examples:
        msgs = ex.as_dicts()
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        prompts.append(tokenizer.apply_chat_template(msgs[:last], tokenize=False, add_generation_prompt=True))
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    try:
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(
                prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            )
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.no_grad(), ctx:
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            answers.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return [a.strip() for a in answers]
