"""Data loading, validation (file:line errors), assistant-only masking, truncation and batching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadre.errors import DataError, NotFoundError
from cadre.train import TrainConfig
from cadre.train import data as D

from .conftest import label_rows, write_jsonl


def cfg(tmp_path: Path, **kw) -> TrainConfig:
    return TrainConfig(data=tmp_path / "x.jsonl", out=tmp_path / "out", **kw)


def test_chat_and_prompt_completion_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
            {"prompt": "2+2?", "completion": "4"},
        ],
    )
    examples, extra = D.load_examples(path, cfg(tmp_path, system="Be brief."))
    assert extra is None
    assert examples[0].messages == (("system", "Be brief."), ("user", "hi"), ("assistant", "hello"))
    assert examples[1].messages[1:] == (("user", "2+2?"), ("assistant", "4"))
    assert examples[1].source == f"{path}:2"


def test_template_turns_label_rows_into_chats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "card declined", "label": "billing", "n": 3}])
    (ex,), _ = D.load_examples(path, cfg(tmp_path, template="Intent of: {text} ({n})", target="label"))
    assert ex.messages == (("user", "Intent of: card declined (3)"), ("assistant", "billing"))


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [json.dumps(r) for r in label_rows(5)]
    rows.insert(3, '{"messages": [ {"role": "user", "content": "oops"}')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:4: not valid JSON"):
        D.load_examples(path, cfg(tmp_path))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "no non-empty assistant"),
        ({"messages": "hello"}, "non-empty list"),
        ({"messages": [{"role": "user", "content": 3}]}, "content must be a string"),
        ({"question": "q", "answer": "a"}, "expected a 'messages' list"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_rows_are_rejected_with_their_line(tmp_path: Path, row: object, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(label_rows(1)[0]) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        D.load_examples(path, cfg(tmp_path))
    assert f"{path}:2:" in str(err.value)


def test_template_with_unknown_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": "y"}])
    with pytest.raises(DataError, match=r"d.jsonl:1: the template uses field 'body'"):
        D.load_examples(path, cfg(tmp_path, template="{body}", target="label"))


def test_missing_empty_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        D.load_examples(tmp_path / "nope.jsonl", cfg(tmp_path))
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no examples"):
        D.load_examples(tmp_path / "empty.jsonl", cfg(tmp_path))
    (tmp_path / "d.parquet").write_bytes(b"x")
    with pytest.raises(DataError, match="unknown data format"):
        D.load_examples(tmp_path / "d.parquet", cfg(tmp_path))


def test_one_class_and_empty_datasets_are_unusable(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "completion": "yes"} for i in range(10)]
    examples, _ = D.load_examples(write_jsonl(tmp_path / "d.jsonl", rows), cfg(tmp_path))
    with pytest.raises(DataError, match="same answer 'yes'"):
        D.check_usable(examples, what="d.jsonl")
    with pytest.raises(DataError, match="no examples"):
        D.check_usable([], what="d.jsonl")
    summary = D.check_usable(
        [*examples[:9], D.ChatExample((("user", "q"), ("assistant", "no")), "x")], what="d"
    )
    assert summary.distinct_answers == 2


def test_csv_columns_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"card, declined",billing\nforgot password,login\n', encoding="utf-8")
    examples, _ = D.load_examples(path, cfg(tmp_path, prompt_column="text", completion_column="label"))
    assert [e.messages for e in examples] == [
        (("user", "card, declined"), ("assistant", "billing")),
        (("user", "forgot password"), ("assistant", "login")),
    ]
    with pytest.raises(DataError, match=r"d.csv:2: expected a 'messages' list"):
        D.load_examples(path, cfg(tmp_path))


def test_datasets_directory_with_splits(tmp_path: Path) -> None:
    import datasets

    rows = [{"prompt": f"q{i}", "completion": f"a{i % 3}"} for i in range(6)]
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "validation": datasets.Dataset.from_list(rows[:2])}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    train, extra = D.load_examples(tmp_path / "ds", cfg(tmp_path))
    assert len(train) == 6 and extra is not None and len(extra) == 2
    assert train[0].source.endswith("[train]:row 0")


def test_assistant_only_mask(tokenizer) -> None:
    ex = D.ChatExample(
        (
            ("user", "Where is my parcel?"),
            ("assistant", "shipping"),
            ("user", "And the bill?"),
            ("assistant", "billing"),
        ),
        "mem:1",
    )
    (tok,), report = D.tokenize_examples([ex], tokenizer, max_length=512)
    assert report.truncated == report.dropped == 0
    labelled = [t for t, lab in zip(tok.input_ids, tok.labels) if lab != D.IGNORE_INDEX]
    # exactly the two answers, each followed by the end-of-turn token, and nothing of the prompts
    assert tokenizer.decode(labelled) == "shipping<|im_end|>billing<|im_end|>"
    full = tokenizer.decode(tok.input_ids)
    assert full.startswith("<|im_start|>system\n") and "Where is my parcel?" in full


def test_truncation_keeps_the_answer_and_counts(tokenizer) -> None:
    long_prompt = "word " * 300
    examples = [
        D.ChatExample((("user", long_prompt), ("assistant", "billing")), "mem:1"),
        D.ChatExample((("user", "short"), ("assistant", "x " * 200)), "mem:2"),
        D.ChatExample((("user", "short"), ("assistant", "login")), "mem:3"),
    ]
    out, report = D.tokenize_examples(examples, tokenizer, max_length=64)
    assert (report.truncated, report.dropped) == (1, 1)
    assert report.first_source is not None and report.first_source.startswith("mem:1")
    assert [e.source for e in out] == ["mem:1", "mem:3"]
    assert len(out[0]) == 64 and out[0].labels[-2] != D.IGNORE_INDEX
    _, report = D.tokenize_examples(examples, tokenizer, max_length=64, too_long="drop")
    assert report.dropped == 2
    with pytest.raises(DataError, match=r"mem:1: \d+ tokens, longer than max_length=64"):
        D.tokenize_examples(examples, tokenizer, max_length=64, too_long="error")


def test_epoch_batches_are_a_deterministic_bucketed_permutation() -> None:
    lengths = [(i * 37) % 101 + 5 for i in range(203)]
    a = D.epoch_batches(lengths, 8, seed=3, epoch=0)
    assert a == D.epoch_batches(lengths, 8, seed=3, epoch=0)
    assert a != D.epoch_batches(lengths, 8, seed=3, epoch=1)
    flat = sorted(i for b in a for i in b)
    assert flat == list(range(203))
    # bucketing: inside a batch the lengths are close (sorted within pools of 32 batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 10


def test_split_is_reproducible() -> None:
    exs = [D.ChatExample((("user", str(i)), ("assistant", str(i % 2))), f"m:{i}") for i in range(20)]
    tr, ev = D.split_examples(exs, 0.2, seed=1)
    assert len(ev) == 4 and len(tr) == 16
    assert D.split_examples(exs, 0.2, seed=1) == (tr, ev)
