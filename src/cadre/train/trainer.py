"""The LoRA fine-tuning loop: plain PyTorch over a PEFT model, no HF Trainer.

Why a hand-written loop: the loss is computed on assistant tokens only, and the LM head (49,152 × 576 for
SmolLM2, a large share of the compute) is applied only to those positions instead of to every token; the data
order, the schedule and every piece of state are ours, so a checkpoint can be resumed exactly; and nothing
is pickled.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cadre.errors import ConfigError, DataError
from cadre.runtime.trained_prompt import TrainedPrompt
from cadre.train import data as D
from cadre.train.answer_match import score
from cadre.train.base import BaseInfo, BaseRef, describe_base, load_base_model, load_tokenizer, resolve_base
from cadre.train.budget import StepPlanner
from cadre.train.card import render_model_card
from cadre.train.checkpoint import (
    atomic_dir,
    atomic_write_text,
    latest_checkpoint,
    load_checkpoint,
    local_rng_state,
    rng_states,
    save_checkpoint,
)
from cadre.train.config import TrainConfig
from cadre.train.distributed import Cluster, loss_module, rank_microbatches
from cadre.train.loop_parts import (
    LabelledTokenLoss,
    collate,
    generate_answers,
    lr_at,
    memory_passes,
    pick_bf16,
    pick_device,
)
from cadre.train.reporting import Reporter

__all__ = ["TrainResult", "train"]

EVALS_PER_RUN = 8
EVAL_TIME_RATIO = 8.0  # under a time budget: optimizer seconds between evaluations >= 8 x the last one's
# Config fields that may change between a run and its --resume without changing the result.
_RESUME_MAY_CHANGE = {"out", "threads", "budget", "max_steps", "epochs", "share_prefix"}


@dataclass
class TrainResult:
    """What ``train`` returns; ``adapter_dir`` holds the PEFT adapter (``adapter_model.safetensors``)."""

    adapter_dir: Path
    metrics: dict[str, Any]
    steps: int
    stopped: str  # "completed" | "early_stopping" | "budget"
    resumed_from: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    primary: bool = (
        True  # False on the processes other than rank 0 of a multi-process run (they wrote nothing)
    )


# ---------------------------------------------------------------------------------------------- the loop


@dataclass
class _Prepared:
    ref: BaseRef
    tokenizer: Any
    train: list[D.TokenizedExample]
    evals: list[D.TokenizedExample]
    eval_chats: list[D.ChatExample]
    summary: D.DataSummary
    truncation: D.TruncationReport
    eval_truncation: D.TruncationReport
    prompt: TrainedPrompt  # the system prompt trained with (recorded in cadre.json and the exported GGUF)
    timing: dict[str, float] = field(default_factory=dict)  # seconds per phase, outside the optimizer steps


def _prepare(config: TrainConfig, reporter: Reporter) -> _Prepared:
    """Everything that can fail on bad input, done before the model is loaded."""
    examples, extra_eval = D.load_examples(config.data, config)
    summary = D.check_usable(examples, what=str(config.data))
    if config.eval_data is not None:
        eval_examples, _ = D.load_examples(config.eval_data, config)
        train_examples = examples
    elif extra_eval is not None:
        train_examples, eval_examples = examples, extra_eval
    else:
        train_examples, eval_examples = D.split_examples(examples, config.eval_fraction, config.seed)
    if not train_examples:
        raise DataError(f"{config.data}: nothing left to train on after holding out the evaluation split")
    train_examples, eval_examples, prompt = D.apply_constant_system(train_examples, eval_examples, config)
    ref = resolve_base(config.base)
    tokenizer = load_tokenizer(ref)
    train, report = D.tokenize_examples(
        train_examples, tokenizer, max_length=config.max_length, too_long=config.too_long
    )
    evals, eval_report = D.tokenize_examples(
        eval_examples, tokenizer, max_length=config.max_length, too_long=config.too_long
    )
    if not train:
        raise DataError(
            f"{config.data}: every example is longer than max_length={config.max_length} tokens "
            f"(longest {report.longest}); raise --max-length"
        )
    if report.truncated or report.dropped:
        reporter.note(
            f"[yellow]note:[/] {report.truncated} training examples truncated and {report.dropped} dropped "
            f"(longer than max_length={config.max_length}; first: {report.first_source})"
        )
    kept = {e.source for e in evals}
    eval_chats = [c for c in eval_examples if c.source in kept]
    return _Prepared(ref, tokenizer, train, evals, eval_chats, summary, report, eval_report, prompt)


def _check_resume_config(out: Path, config: TrainConfig) -> None:
    saved_path = out / "train_config.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    now = json.loads(config.model_dump_json())
    diffs = sorted(
        k for k in set(saved) | set(now) if k not in _RESUME_MAY_CHANGE and saved.get(k) != now.get(k)
    )
    if diffs:
        raise ConfigError(
            f"--resume: the config differs from the interrupted run in {', '.join(diffs)}; "
            "resume with the same settings or train into a new --out"
        )


def _save_adapter(model: Any, target: Path) -> None:
    """The PEFT adapter (safetensors only) into ``target``, atomically."""
    with atomic_dir(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "README.md").unlink(missing_ok=True)  # PEFT's generic card; ours is written at the end


def train(config: TrainConfig, *, progress: bool = True, resume: bool = False) -> TrainResult:
    """Fine-tune a LoRA adapter on ``config.data``; write adapter, config, metrics and model card to ``config.out``.

    Args:
        config: the training spec.
        progress: show a progress bar and notes on stderr.
        resume: continue from the newest checkpoint in ``config.out`` (same data order, optimizer and RNG).

    Raises:
        NotFoundError: the data file or the base model does not exist.
        DataError: the data is malformed (file:line), empty, one-class, or too long for ``max_length``.
        ConfigError: ``config.out`` holds another run (without ``resume``) or a different config (with it).
        ModelLoadError: the base cannot be loaded.
    """
    cluster = Cluster(pick_device(config))
    reporter = Reporter(progress and cluster.is_main)
    out = Path(config.out)
    ckpt = latest_checkpoint(out) if resume else None
    if not resume and (latest_checkpoint(out) is not None or (out / "adapter_model.safetensors").exists()):
        raise ConfigError(
            f"{out} already holds a training run; pass --resume to continue it or choose another --out"
        )
    if ckpt is not None:
        _check_resume_config(out, config)
    elif resume:
        reporter.note(f"[yellow]note:[/] no checkpoint in {out}/checkpoints; starting from the beginning")
    cluster.barrier()  # every process has looked at ``out`` before rank 0 writes into it

    clock = time.perf_counter()
    prep = _prepare(config, reporter)
    prep.timing["prepare_data"] = time.perf_counter() - clock
    import torch

    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, out, prep, ckpt, reporter, cluster)
    finally:
        torch.set_num_threads(threads_before)


def _run(
    config: TrainConfig,
    out: Path,
    prep: _Prepared,
    ckpt: Path | None,
    reporter: Reporter,
    cluster: Cluster,
) -> TrainResult:
    import torch
    from peft import LoraConfig, get_peft_model

    device = cluster.device
    bf16 = pick_bf16(config, device)

    torch.manual_seed(config.seed)
    clock = time.perf_counter()
    with cluster.main_first():  # rank 0 fills the dequantized-base cache, the others read it
        base_model = load_base_model(prep.ref, device=device, qlora=config.qlora)
    info = describe_base(prep.ref, base_model.config)
    if info.context_length and config.max_length > info.context_length:
        raise ConfigError(
            f"max_length={config.max_length} is longer than the base's context ({info.context_length}); lower it"
        )
    if config.qlora:
        from peft import prepare_model_for_kbit_training

        base_model = prepare_model_for_kbit_training(base_model, use_gradient_checkpointing=False)
    lora = LoraConfig(
        r=config.lora.rank,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=list(config.lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(base_model, lora)
    except ValueError as err:
        raise ConfigError(f"lora.target_modules: {err}") from None
    loss_fn = LabelledTokenLoss(model, bf16=bf16, device=device)
    # one process: the loss function itself; several: DDP over a module whose forward is the loss
    step_loss_fn = cluster.wrap(loss_module(model, loss_fn)) if cluster.world > 1 else loss_fn
    if cluster.rank:  # LoRA dropout: other masks than rank 0's (the weights are rank 0's, DDP broadcast them)
        torch.manual_seed(config.seed + 1_000_003 * cluster.rank)
    trainable = [p for p in model.parameters() if p.requires_grad]
    prep.timing["load_model"] = time.perf_counter() - clock
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    pad_id = int(prep.tokenizer.pad_token_id)
    lengths = [len(e) for e in prep.train]

    out.mkdir(parents=True, exist_ok=True)
    planner = StepPlanner.for_run(config, lengths)
    state: dict[str, Any]
    resumed_from = None
    if ckpt is not None:
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer, rank=cluster.rank)
        resumed_from = int(state["step"])
        if planner.seconds is None:  # a changed --max-steps/--epochs/token budget applies to the resumed run
            state["total_steps"] = max(resumed_from, planner.initial())
        reporter.note(f"resuming from {ckpt.name} (step {resumed_from} of {state['total_steps']})")
    else:
        state = {
            "step": 0,
            "epoch": 0,
            "micro": 0,
            "total_steps": planner.initial(),
            "tokens_seen": 0,
            "train_seconds": 0.0,
            "best_score": None,
            "best_step": None,
            "bad_evals": 0,
            "history": [],
            "stopped": None,
            "train_losses": [],
        }
        if cluster.is_main:
            atomic_write_text(out / "train_config.json", config.model_dump_json(indent=2))
            atomic_write_text(
                out / "train_config.yaml",
                yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False),
            )
            atomic_write_text(
                out / "cadre.json",
                json.dumps({"base": info.to_json(), "prompt": prep.prompt.to_json()}, indent=2),
            )

    total = int(state["total_steps"])
    have_eval = bool(prep.evals)
    max_new = (
        max(
            (len(prep.tokenizer(c.answer, add_special_tokens=False)["input_ids"]) for c in prep.eval_chats),
            default=16,
        )
        + 8
    )
    recent: deque[float] = deque(maxlen=20)
    run_log: list[tuple[float, int]] = []  # (seconds, tokens) of each step run by this process

    def evaluate() -> dict[str, Any]:
        clock = time.perf_counter()
        model.eval()
        total_loss, n_tok = 0.0, 0
        mine = [prep.evals[i] for i in cluster.shard(len(prep.evals))]
        with torch.no_grad():
            for b in range(0, len(mine), config.micro_batch):
                batch = collate(
                    mine[b : b + config.micro_batch], pad_id, device, share_prefix=config.share_prefix
                )
                loss, n = loss_fn(batch)
                total_loss += float(loss)
                n_tok += n
        total_loss, n_tok_sum = cluster.sum_floats([total_loss, n_tok])
        n_tok = int(n_tok_sum)
        record: dict[str, Any] = {
            "step": state["step"],
            "examples_seen": state.get("examples_seen", 0),
            "eval_loss": total_loss / max(1, n_tok),
        }
        if config.metric:
            chats = prep.eval_chats[: config.metric_examples]
            own = [chats[i] for i in cluster.shard(len(chats))]
            preds = cluster.gather(
                generate_answers(model, prep.tokenizer, own, max_new_tokens=min(max_new, 256), bf16=bf16)
                if own
                else []
            )
            record[config.metric] = score(config.metric, preds, [c.answer for c in chats])
        model.train()
        prep.timing["evaluate"] = prep.timing.get("evaluate", 0.0) + time.perf_counter() - clock
        return record

    def checkpoint(*, collective: bool = True) -> None:
        clock = time.perf_counter()
        # every process's RNG state (a collective: all processes call this at the same step), rank 0 writes
        rng = rng_states(cluster.gather([local_rng_state()]) if collective else None)
        if cluster.is_main:
            save_checkpoint(
                out, model=model, optimizer=optimizer, state=state, keep=config.keep_checkpoints, rng=rng
            )
        prep.timing["checkpoints"] = prep.timing.get("checkpoints", 0.0) + time.perf_counter() - clock

    model.train()
    try:
        with reporter.bar(total, int(state["step"])):
            while state["step"] < total and state["stopped"] is None:
                batches = D.epoch_batches(lengths, config.micro_batch, config.seed, int(state["epoch"]))
                group = batches[state["micro"] : state["micro"] + config.accumulation]
                t0 = time.perf_counter()
                warmup = int(total * config.warmup_fraction)
                lr = lr_at(int(state["step"]), total, warmup, config.learning_rate, config.schedule)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                # the global batch's counts (every process holds all the data), then this process's share
                examples = [[prep.train[i] for i in mb] for mb in group]
                n_label = sum(sum(x != D.IGNORE_INDEX for x in e.labels[1:]) for mb in examples for e in mb)
                step_tokens = sum(len(e) for mb in examples for e in mb)
                mine = rank_microbatches(group, cluster.rank, cluster.world)
                weight = cluster.world  # DDP averages over the processes; x world makes it the global sum
                if not mine:  # fewer examples than processes: a zero-weight pass keeps the reduction in step
                    mine, weight = [list(group[0][:1])], 0
                mine = [
                    p
                    for mb in mine
                    for p in memory_passes(
                        mb, prep.train, config.pass_tokens, share_prefix=config.share_prefix
                    )
                ]
                step_loss, step_slots, step_shared = 0.0, 0, 0
                for k, mb in enumerate(mine):
                    batch = collate(
                        [prep.train[i] for i in mb], pad_id, device, share_prefix=config.share_prefix
                    )
                    with cluster.no_sync(step_loss_fn, last=k == len(mine) - 1):
                        loss, _ = step_loss_fn(batch)
                        cluster.backward((loss * weight) / max(1, n_label))
                    step_loss += float(loss.detach()) * (weight > 0)
                    step_slots += int(batch["attention_mask"].numel()) * (weight > 0)
                    step_shared += int(batch["prefix_len"]) * (len(mb) - 1) * (weight > 0)
                if config.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                # the step's seconds are rank 0's on every process, so a time budget stops them all together
                step_loss, slots, shared, dt = cluster.sum_floats(
                    [step_loss, step_slots, step_shared, dt if cluster.is_main else 0.0]
                )
                step_slots, step_shared = int(slots), int(shared)
                state["step"] += 1
                state["micro"] += len(group)
                if state["micro"] >= len(batches):
                    state["epoch"] += 1
                    state["micro"] = 0
                state["tokens_seen"] += step_tokens
                state["examples_seen"] = state.get("examples_seen", 0) + sum(len(mb) for mb in examples)
                state["padded_slots"] = state.get("padded_slots", 0) + step_slots - step_tokens
                state["shared_tokens"] = state.get("shared_tokens", 0) + step_shared
                state["train_seconds"] += dt
                run_log.append((dt, step_tokens))
                planner.observe(dt, step_tokens)
                total = planner.replan(int(state["step"]), total, state["train_seconds"])
                state["total_steps"] = total
                train_loss = step_loss / max(1, n_label)
                state.setdefault("train_losses", []).append(train_loss)
                recent.append(train_loss)
                state["recent_train_loss"] = sum(recent) / len(recent)
                tps = state["tokens_seen"] / max(1e-9, state["train_seconds"])
                reporter.update(
                    int(state["step"]), total, loss=f"{sum(recent) / len(recent):.3f}", tps=f"{tps:.0f}"
                )

                eval_every = config.eval_every or max(1, total // EVALS_PER_RUN)
                last_eval = state["history"][-1]["step"] if state["history"] else 0
                due = state["step"] - last_eval >= eval_every
                if due and planner.seconds is not None and config.eval_every is None:
                    # under a time budget, evaluations may add at most ~1/EVAL_TIME_RATIO to the wall time
                    since = state["train_seconds"] - state.get("train_seconds_at_eval", 0.0)
                    due = since >= EVAL_TIME_RATIO * state.get("last_eval_seconds", 0.0)
                if have_eval and (due or state["step"] >= total):
                    clock = time.perf_counter()
                    record = evaluate()
                    [state["last_eval_seconds"]] = cluster.from_main([time.perf_counter() - clock])
                    state["train_seconds_at_eval"] = state["train_seconds"]
                    record["train_loss"] = sum(recent) / len(recent)
                    state["history"].append(record)
                    value = record[config.metric] if config.metric else -record["eval_loss"]
                    if state["best_score"] is None or value > state["best_score"] + 1e-6:
                        state["best_score"], state["best_step"], state["bad_evals"] = value, state["step"], 0
                        if cluster.is_main:
                            _save_adapter(model, out / "checkpoints" / "best")
                    else:
                        state["bad_evals"] += 1
                        if (
                            config.early_stopping_patience
                            and state["bad_evals"] >= config.early_stopping_patience
                            and state["step"] < total
                        ):
                            state["stopped"] = "early_stopping"
                    shown = f"{record['eval_loss']:.3f}" + (
                        f" {config.metric} {record[config.metric]:.2f}" if config.metric else ""
                    )
                    reporter.update(int(state["step"]), total, eval=shown)
                if planner.out_of_time(state["train_seconds"]) and state["step"] < total:
                    state["stopped"] = "budget"
                if state["step"] % config.save_every == 0 or state["step"] >= total or state["stopped"]:
                    checkpoint()
    except KeyboardInterrupt:
        checkpoint(collective=False)
        reporter.note(f"interrupted at step {state['step']}; continue with --resume")
        raise

    steady = run_log[1:]  # the first step pays one-off allocation costs
    state["steady_tokens_per_second"] = (
        sum(t for _, t in steady) / max(1e-9, sum(s for s, _ in steady)) if steady else None
    )
    result = _finish(config, out, model, prep, info, state, resumed_from, bf16, device, cluster)
    cluster.barrier()  # the outputs are complete when any process returns
    return result


def _finish(
    config: TrainConfig,
    out: Path,
    model: Any,
    prep: _Prepared,
    info: BaseInfo,
    state: dict[str, Any],
    resumed_from: int | None,
    bf16: bool,
    device: str,
    cluster: Cluster,
) -> TrainResult:
    """Write the chosen adapter, metrics.json and README.md into ``out`` (rank 0; the other processes compute
    the same metrics and write nothing).

    The adapter is the last step's, where the schedule planned for the run has decayed, unless early stopping
    ended the run: then the best evaluated one. On HWU64 the best-by-held-out-loss adapter of a 10-minute run
    (56 held-out examples, step 91 of 142) answered 0.940 of 200 test items and the last one 0.955
    (docs/train.md): a small held-out split's loss is too noisy to pick a checkpoint by.
    """
    clock = time.perf_counter()
    best_dir = out / "checkpoints" / "best"
    keep_best = state["stopped"] == "early_stopping" and state["best_step"] is not None
    if keep_best:
        source = f"best evaluation (step {state['best_step']})"
    else:
        source = f"last step ({state['step']})"
    if cluster.is_main:
        if keep_best and best_dir.is_dir():
            chosen = best_dir
        else:
            _save_adapter(model, out / "checkpoints" / "last")
            chosen, source = out / "checkpoints" / "last", f"last step ({state['step']})"
        for f in chosen.iterdir():
            if f.is_file():
                tmp = out / f".tmp-{f.name}"
                shutil.copyfile(f, tmp)
                tmp.replace(out / f.name)
    history = state["history"]
    best = next((h for h in history if h["step"] == state["best_step"]), None)
    per_epoch_micro = max(1, math.ceil(len(prep.train) / config.micro_batch))
    epochs = state["epoch"] + state["micro"] / per_epoch_micro
    budget = config.parsed_budget
    timing = {k: round(v, 2) for k, v in prep.timing.items()}
    timing["train"] = round(state["train_seconds"], 2)
    timing["write_outputs"] = round(time.perf_counter() - clock, 2)
    timing["total"] = round(sum(timing.values()), 2)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    metrics: dict[str, Any] = {
        "steps": state["step"],
        "total_steps": state["total_steps"],
        "epochs": epochs,
        "stopped": state["stopped"] or "completed",
        "adapter_from": source,
        "train_examples": len(prep.train),
        "eval_examples": len(prep.evals),
        "distinct_answers": prep.summary.distinct_answers,
        "truncated": prep.truncation.truncated,
        "dropped": prep.truncation.dropped,
        "tokens_seen": state["tokens_seen"],
        "examples_seen": state.get("examples_seen", 0),
        "prompt": prep.prompt.to_json(),
        # share of the batches' token slots that were padding, and of the tokens seen that a shared prefix
        # pass computed once for the micro-batch instead of once per row
        "padding_share": state.get("padded_slots", 0)
        / max(1, state["tokens_seen"] + state.get("padded_slots", 0)),
        "shared_prefix_share": state.get("shared_tokens", 0) / max(1, state["tokens_seen"]),
        "train_seconds": round(state["train_seconds"], 2),
        "budget_seconds": budget.seconds if budget is not None else None,
        "budget_tokens": budget.tokens if budget is not None else None,
        "seconds": timing,
        "tokens_per_second": state["tokens_seen"] / max(1e-9, state["train_seconds"]),
        "steady_tokens_per_second": state.get("steady_tokens_per_second"),
        "final_train_loss": state.get("recent_train_loss"),
        "best": best,
        "history": history,
        "device": device,
        "precision": "bf16-autocast" if bf16 else "fp32",
        "peak_rss_mb": round(rss_mb, 1),
        "resumed_from_step": resumed_from,
        "processes": cluster.world,
        "train_losses": state.get("train_losses", []),
    }
    if cluster.is_main:
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
        atomic_write_text(out / "README.md", render_model_card(config, info, prep.summary, metrics))
    return TrainResult(
        adapter_dir=out,
        metrics=metrics,
        steps=int(state["step"]),
        stopped=metrics["stopped"],
        resumed_from=resumed_from,
        history=history,
        primary=cluster.is_main,
    )
