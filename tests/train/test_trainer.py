"""The training loop on a tiny random llama: outputs, loss masking, schedule, budgets, early stopping, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadre.errors import ConfigError, NotFoundError
from cadre.train import TrainConfig, train
from cadre.train import data as D
from cadre.train.budget import StepPlanner, steps_for_tokens
from cadre.train.loop_parts import LabelledTokenLoss, cpu_supports_bf16, lr_at, memory_passes, pass_tokens

from .conftest import write_jsonl


def tiny_config(base: Path, data: Path, out: Path, **kw) -> TrainConfig:
    defaults = {
        "batch_size": 4,
        "max_length": 96,
        "learning_rate": 3e-3,
        "lora": {"rank": 4, "alpha": 8},
        "seed": 0,
    }
    return TrainConfig.model_validate(
        {"base": str(base), "data": str(data), "out": str(out), **defaults, **kw}
    )


def test_train_writes_adapter_config_metrics_and_card(
    tiny_base: Path, chat_data: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    result = train(tiny_config(tiny_base, chat_data, out, max_steps=16, eval_every=4), progress=False)
    assert result.adapter_dir == out and result.steps == 16 and result.stopped == "completed"
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "train_config.json",
        "train_config.yaml",
    } <= names
    assert {"metrics.json", "README.md", "cadre.json", "checkpoints"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 16 and metrics["tokens_per_second"] > 0 and metrics["peak_rss_mb"] > 0
    evals = [h["eval_loss"] for h in metrics["history"]]
    assert len(evals) == 4 and evals[-1] < evals[0]  # it learns the labels
    assert metrics["best"]["eval_loss"] == min(evals)
    assert (
        metrics["adapter_from"] == "last step (16)"
    )  # no early stopping: the decayed schedule's end is kept
    card = (out / "README.md").read_text()
    for section in (
        "## Base model",
        "## Data",
        "## Hyperparameters",
        "## Metrics",
        "## Learning curve",
        "## Intended use and limits",
    ):
        assert section in card
    # the learning curve: one row per evaluation, held-out loss vs examples seen
    seen = [h["examples_seen"] for h in metrics["history"]]
    assert seen == sorted(seen) and seen[0] == 16 and seen[-1] == metrics["examples_seen"]
    for h in metrics["history"]:
        assert f"| {h['examples_seen']} | " in card
    # the adapter is a normal PEFT adapter
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_base)), str(out))
    assert any("lora_A" in n for n, _ in model.named_parameters())
    # the same out without --resume is refused
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_base, chat_data, out, max_steps=16), progress=False)


def test_loss_only_on_labelled_positions_matches_hf(tiny_base: Path, tokenizer) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_base)), LoraConfig(r=2, target_modules=["q_proj"])
    )
    model.eval()
    exs = [
        D.ChatExample((("user", f"question {i}" * (i + 1)), ("assistant", f"answer {i}")), f"m:{i}")
        for i in range(3)
    ]
    toks, _ = D.tokenize_examples(exs, tokenizer, max_length=128)
    from cadre.train.loop_parts import collate

    batch = collate(toks, tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        total, n = LabelledTokenLoss(model, bf16=False, device="cpu")(batch)
        reference = model(**batch).loss  # HF shifts labels and ignores -100 itself
    assert n == sum(sum(x != D.IGNORE_INDEX for x in t.labels[1:]) for t in toks)
    assert float(total) / n == pytest.approx(float(reference), rel=1e-5)


def test_lr_schedule() -> None:
    assert lr_at(0, 100, 10, 1.0, "cosine") == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, "cosine") == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0, "cosine") == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, "cosine") == pytest.approx(0.5)
    assert lr_at(55, 100, 10, 1.0, "linear") == pytest.approx(0.5)
    assert lr_at(99, 100, 0, 1.0, "constant") == 1.0
    assert all(lr_at(s, 50, 5, 1.0, "cosine") >= lr_at(s + 1, 50, 5, 1.0, "cosine") for s in range(5, 49))


def test_step_planning_from_epochs_tokens_time_and_caps(tmp_path: Path) -> None:
    lengths = [50] * 40  # 2000 tokens, 10 steps of 200 tokens per epoch
    base = {"data": str(tmp_path / "d"), "out": str(tmp_path / "o"), "batch_size": 4}

    def plan(seconds_per_token: float | None = None, **kw) -> int:
        cfg = TrainConfig.model_validate({**base, **kw})
        return StepPlanner.for_run(cfg, lengths).initial(seconds_per_token)

    assert plan() == 30  # 3 default epochs x 10
    assert plan(epochs=0.5) == 5
    assert plan(budget="1000 tokens") == 5
    assert plan(0.01, budget="10s") == 5  # 10 s / (0.01 s/token x 200 tokens/step)
    assert plan(budget="1M tokens", max_steps=7) == 7
    assert plan(budget="1000 tokens", epochs=0.2) == 2  # the smaller limit wins


def test_token_budget_is_exact_over_uneven_batches(tmp_path: Path) -> None:
    lengths = [10 + (i * 37) % 90 for i in range(50)]
    cfg = TrainConfig.model_validate(
        {"data": str(tmp_path / "d"), "out": str(tmp_path / "o"), "batch_size": 8, "micro_batch_size": 4}
    )
    steps = steps_for_tokens(lengths, cfg, 3000)
    seen, step, epoch = [], 0, 0
    while step < steps:  # replay the loop's order: accumulation groups over epoch_batches
        batches = D.epoch_batches(lengths, 4, 0, epoch)
        for g in range(0, len(batches), 2):
            seen.append(sum(lengths[i] for mb in batches[g : g + 2] for i in mb))
            step += 1
            if step == steps:
                break
        epoch += 1
    assert sum(seen) >= 3000 > sum(seen[:-1])


def test_time_budget_replans_from_measured_throughput(tmp_path: Path) -> None:
    cfg = TrainConfig.model_validate(
        {"data": str(tmp_path / "d"), "out": str(tmp_path / "o"), "budget": "60s"}
    )
    planner = StepPlanner.for_run(cfg, [100] * 80)  # 800 tokens per step
    assert planner.initial(0.01 / 800) == 6000  # a guess of 10 ms per step
    assert planner.initial() == 15  # the nominal 200 tokens/s
    planner.observe(9.0, 800)  # warm-up steps are slow, and used until a steady step is measured
    assert planner.seconds_per_token == pytest.approx(9 / 800)
    planner.observe(3.0, 800)
    for _ in range(3):
        planner.observe(1.0, 800)  # then the run runs at 1 s per step
    assert planner.seconds_per_token == pytest.approx(1 / 800)
    assert planner.replan(5, 6000, 5.0) == 60  # 55 s left at 1 s per step
    assert planner.replan(59, 60, 59.4) == 60 and planner.replan(59, 60, 59.6) == 59
    assert not planner.out_of_time(60.0) and planner.out_of_time(61.3)


def test_time_budget_is_spent_within_ten_percent(tiny_base: Path, chat_data: Path, tmp_path: Path) -> None:
    # the first plan assumes 200 tokens/s, far from this tiny model's speed: re-planning must still end on time
    cfg = tiny_config(
        tiny_base, chat_data, tmp_path / "run", budget="12s", save_every=100, early_stopping_patience=None
    )
    result = train(cfg, progress=False)
    m = result.metrics
    assert m["train_seconds"] == pytest.approx(12.0, rel=0.10), m["seconds"]
    assert result.stopped == "completed" and m["steps"] == m["total_steps"]  # the schedule ran to its end
    assert m["epochs"] > 1  # a time budget is not capped at the default epochs
    assert m["shared_prefix_share"] > 0.3 and 0 <= m["padding_share"] < 0.3  # the template's system prompt
    assert {"prepare_data", "load_model", "evaluate", "train", "total"} <= set(m["seconds"])
    assert m["seconds"]["total"] >= m["seconds"]["train"] + m["seconds"]["load_model"]


def test_token_budget_run_and_early_stopping(tiny_base: Path, chat_data: Path, tmp_path: Path) -> None:
    # a learning rate of ~0 never improves the held-out loss: stop after `patience` evaluations
    cfg = tiny_config(
        tiny_base,
        chat_data,
        tmp_path / "run",
        learning_rate=1e-12,
        schedule="constant",
        budget="20k tokens",
        eval_every=1,
        early_stopping_patience=2,
    )
    result = train(cfg, progress=False)
    assert result.stopped == "early_stopping" and result.steps == 3
    assert result.metrics["total_steps"] > 3
    assert result.metrics["adapter_from"].startswith("best evaluation (step 1)")


def test_bad_inputs_fail_before_training(tiny_base: Path, chat_data: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="unknown base model 'smollm9'"):
        train(tiny_config("smollm9", chat_data, tmp_path / "a"), progress=False)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="does not exist"):
        train(tiny_config(tiny_base, tmp_path / "missing.jsonl", tmp_path / "b"), progress=False)
    one_class = write_jsonl(
        tmp_path / "one.jsonl", [{"prompt": f"q{i}", "completion": "same"} for i in range(9)]
    )
    from cadre.errors import DataError

    with pytest.raises(DataError, match="same answer"):
        train(tiny_config(tiny_base, one_class, tmp_path / "c"), progress=False)
    with pytest.raises(ConfigError, match="longer than the base's context"):
        train(tiny_config(tiny_base, chat_data, tmp_path / "d", max_length=1024), progress=False)
    assert not (tmp_path / "c").exists()


def test_bf16_detection_reads_cpuinfo() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    assert cpu_supports_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_shared_prefix_gives_the_same_loss_and_gradients(tiny_base: Path, tokenizer) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cadre.train.loop_parts import collate

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_base)),
        LoraConfig(
            r=4, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False
        ),
    )
    system = "Classify the request as one of: billing, refund, login, shipping. Answer with the label only."
    exs = [
        D.ChatExample(
            (
                ("system", system),
                ("user", f"ticket {i}: " + "word " * i),
                ("assistant", ("billing", "login")[i % 2]),
            ),
            f"m:{i}",
        )
        for i in range(5)
    ]
    toks, _ = D.tokenize_examples(exs, tokenizer, max_length=256)
    loss_fn = LabelledTokenLoss(model, bf16=False, device="cpu")
    results = []
    for share in (False, True):
        model.zero_grad()
        batch = collate(toks, tokenizer.pad_token_id, "cpu", share_prefix=share)
        loss, n = loss_fn(batch)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
        results.append((batch["prefix_len"], float(loss), n, grads))
    (p0, loss0, n0, g0), (p1, loss1, n1, g1) = results
    assert p0 == 0 and p1 > 20  # the template opening and the system prompt
    assert n0 == n1 and loss1 == pytest.approx(loss0, rel=1e-5)
    assert torch.allclose(g0, g1, atol=1e-5 * float(g0.abs().max()))


def test_memory_passes_count_the_tokens_a_pass_computes() -> None:
    def row(prefix: int, n: int) -> D.TokenizedExample:  # a shared 10-token prefix, then n tokens of its own
        return D.TokenizedExample(
            list(range(prefix)) + [100 + n] * n, [D.IGNORE_INDEX] * prefix + [1] * n, "m"
        )

    ex = [row(10, 10), row(10, 20), row(10, 30), row(10, 40), row(10, 90)]  # lengths 20, 30, 40, 50, 100
    assert memory_passes([0, 1, 2, 3], ex, None, share_prefix=True) == [[0, 1, 2, 3]]
    # the shared prefix stops one token before the first labelled one (its hidden state predicts that token)
    assert pass_tokens(ex[:4], share_prefix=True) == 9 + 4 * (50 - 9)
    assert pass_tokens(ex[:4], share_prefix=False) == 4 * 50
    assert memory_passes([0, 1, 2, 3], ex, 173, share_prefix=True) == [[0, 1, 2, 3]]
    assert memory_passes([0, 1, 2, 3], ex, 173, share_prefix=False) == [[0, 1, 2], [3]]  # 3 x 40, then 50
    assert memory_passes([0, 4, 1], ex, 60, share_prefix=True) == [[0], [4], [1]]  # a row over the cap: alone


def test_pass_tokens_gives_the_same_steps_as_one_pass(
    tiny_base: Path, chat_data: Path, tmp_path: Path
) -> None:
    common = {
        "max_steps": 3,
        "batch_size": 8,
        "eval_fraction": 0.0,
        "schedule": "constant",
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0},  # dropout draws differ with the pass shapes
        "share_prefix": False,
        "threads": 1,
    }
    one = train(tiny_config(tiny_base, chat_data, tmp_path / "one", **common), progress=False)
    split = train(
        tiny_config(tiny_base, chat_data, tmp_path / "split", pass_tokens=64, **common), progress=False
    )
    assert split.metrics["train_losses"] == pytest.approx(one.metrics["train_losses"], rel=1e-4)
    from safetensors.numpy import load_file

    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "split" / "adapter_model.safetensors"))
    # Adam turns a sign flip of a ~0 gradient (summed in another order) into a full-size update of that
    # element, so the adapters are compared as a whole, not element by element
    diff = sum(float(((a[k] - b[k]) ** 2).sum()) for k in a) ** 0.5
    assert diff <= 1e-2 * sum(float((a[k] ** 2).sum()) for k in a) ** 0.5
    assert max(abs(a[k]).max() for k in a if "lora_B" in k) > 1e-4  # the adapter did train
