"""Training with a constant system prompt kept, dropped or replaced, and the prompt recorded in the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadre.errors import DataError
from cadre.formats import read_gguf_header
from cadre.runtime.trained_prompt import GGUF_PROMPT_KEYS, TrainedPrompt, read_trained_prompt
from cadre.train import TrainConfig, export_adapter, train
from cadre.train import data as D

from .conftest import label_rows, write_jsonl

LONG = "Classify the ticket into one of: billing, refund, login, shipping. Answer with the label only."


def with_system(rows: list[dict], system: str) -> list[dict]:
    return [{"messages": [{"role": "system", "content": system}, *r["messages"]]} for r in rows]


def chats(rows: list[dict]) -> list[D.ChatExample]:
    return [
        D.ChatExample(tuple((m["role"], m["content"]) for m in r["messages"]), f"row {i}")
        for i, r in enumerate(rows)
    ]


def config(**kw) -> TrainConfig:
    return TrainConfig.model_validate({"data": "x.jsonl", "out": "o", **kw})


def test_keep_drop_replace_a_constant_system_prompt() -> None:
    train_rows, eval_rows = (
        chats(with_system(label_rows(8), LONG)),
        chats(with_system(label_rows(2, 1), LONG)),
    )
    kept_train, _, kept = D.apply_constant_system(train_rows, eval_rows, config())
    assert kept == TrainedPrompt("keep", LONG, LONG) and kept_train == train_rows
    dropped_train, dropped_eval, dropped = D.apply_constant_system(
        train_rows, eval_rows, config(constant_system="drop")
    )
    assert dropped == TrainedPrompt("drop", None, LONG)
    assert all(ex.messages[0][0] == "user" for ex in dropped_train + dropped_eval)
    new_train, _, new = D.apply_constant_system(
        train_rows, eval_rows, config(constant_system="replace", replacement_system="Label?")
    )
    assert new == TrainedPrompt("replace", "Label?", LONG)
    assert all(ex.messages[0] == ("system", "Label?") for ex in new_train)
    assert [ex.messages[1:] for ex in new_train] == [ex.messages[1:] for ex in train_rows]
    # without a system prompt in common there is nothing to drop, and keep records none
    mixed = chats(label_rows(4)) + train_rows[:4]
    with pytest.raises(DataError, match="do not share one system prompt"):
        D.apply_constant_system(mixed, [], config(constant_system="drop"))
    assert D.apply_constant_system(mixed, [], config())[2] == TrainedPrompt("keep", None, None)
    with pytest.raises(ValueError, match="replacement_system"):
        config(constant_system="replace")


def test_the_prompt_trained_with_is_recorded_in_the_adapter_and_its_gguf(
    tiny_base: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", with_system(label_rows(24), LONG))
    common = {
        "base": str(tiny_base),
        "data": str(data),
        "batch_size": 4,
        "max_steps": 2,
        "max_length": 96,
        "lora": {"rank": 2},
    }
    keep = train(TrainConfig.model_validate({**common, "out": str(tmp_path / "keep")}), progress=False)
    short = train(
        TrainConfig.model_validate(
            {
                **common,
                "out": str(tmp_path / "short"),
                "constant_system": "replace",
                "replacement_system": "Label?",
            }
        ),
        progress=False,
    )
    # the same batches, each example shorter by the prompt's difference
    assert short.metrics["tokens_seen"] < keep.metrics["tokens_seen"] - 8 * 15
    assert short.metrics["prompt"] == {"mode": "replace", "system": "Label?", "data_system": LONG}
    meta = json.loads((tmp_path / "short" / "cadre.json").read_text())
    assert meta["prompt"]["system"] == "Label?" and "base" in meta
    assert read_trained_prompt(tmp_path / "short") == TrainedPrompt("replace", "Label?", LONG)
    assert read_trained_prompt(tmp_path / "keep") == TrainedPrompt("keep", LONG, LONG)
    assert "replaced in training by 'Label?'" in (tmp_path / "short" / "README.md").read_text()
    gguf = export_adapter(tmp_path / "short", "gguf-adapter")
    header = read_gguf_header(gguf)
    assert header.metadata[GGUF_PROMPT_KEYS["system"]] == "Label?"
    assert header.metadata[GGUF_PROMPT_KEYS["data_system"]] == LONG
    assert read_trained_prompt(gguf) == TrainedPrompt("replace", "Label?", LONG)
