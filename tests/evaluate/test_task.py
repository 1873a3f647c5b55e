"""Task specs: loading, data formats, prompt building and the bad-input errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from eval_helpers import INTENT_ROWS, write_jsonl

from cadre.errors import ConfigError, DataError, NotFoundError
from cadre.evaluate.task import (
    FewShotSpec,
    PromptBuilder,
    TaskSpec,
    load_items,
    load_task,
    make_extractor,
    template_fields,
)


def _spec(tmp_path: Path, body: str) -> TaskSpec:
    p = tmp_path / "t.yaml"
    p.write_text(body, encoding="utf-8")
    return load_task(p)


def test_load_task_resolves_paths_and_metric_shorthand(intents_task: Path) -> None:
    spec = load_task(intents_task)
    items = load_items(spec)
    assert len(items) == 10 and items[0].id == "a1" and items[0].target == "order_status"
    assert spec.metric.name == "accuracy"
    spec2 = TaskSpec(name="x", data="d.jsonl", metric={"name": "numeric_match", "abs_tol": 0.1})  # type: ignore[arg-type]
    assert spec2.metric.options == {"abs_tol": 0.1}
    assert len(spec.fingerprint) == 16 and spec.fingerprint == load_task(intents_task).fingerprint


def test_unknown_keys_and_metrics_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"prompt\.templte: unknown key"):
        _spec(tmp_path, "name: x\ndata: d.jsonl\nprompt: {templte: '{text}'}\n")
    with pytest.raises(ConfigError, match="unknown metric 'acc'"):
        _spec(tmp_path, "name: x\ndata: d.jsonl\nmetric: acc\n")
    with pytest.raises(ConfigError, match=r"needs extract\.pattern"):
        _spec(tmp_path, "name: x\ndata: d.jsonl\nextract: {kind: regex}\n")


def test_template_missing_field_names_it_and_the_available_ones(tmp_path: Path, intents_file: Path) -> None:
    spec = _spec(
        tmp_path, "name: x\ndata: intents.jsonl\ntarget_field: label\nprompt: {template: 'Q: {question}'}\n"
    )
    with pytest.raises(ConfigError, match=r"uses \{question\}.*available fields: id, label, text"):
        load_items(spec)
    assert template_fields("{a} {b[x]} {a.y} {{lit}}") == ["a", "b"]
    with pytest.raises(ConfigError, match="named fields"):
        template_fields("{} x")


def test_label_set_must_cover_the_data(tmp_path: Path, intents_file: Path) -> None:
    spec = _spec(
        tmp_path,
        "name: x\ndata: intents.jsonl\ntarget_field: label\nprompt: {template: '{text}'}\n"
        "extract: {kind: label, labels: [order_status, cancel_order]}\n",
    )
    items = load_items(spec)
    with pytest.raises(DataError, match=r"does not cover the data: 'account_access' \(2 items\)"):
        make_extractor(spec, items)
    # by default the labels are the distinct targets
    spec_ok = spec.model_copy(update={"extract": spec.extract.model_copy(update={"labels": None})})
    assert make_extractor(spec_ok, items)("cancel_order") == "cancel_order"


def test_empty_missing_and_malformed_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no records"):
        load_items(_spec(tmp_path, "name: x\ndata: empty.jsonl\n"))
    with pytest.raises(NotFoundError, match="does not exist"):
        load_items(_spec(tmp_path, "name: x\ndata: nope.jsonl\n"))
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "answer": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        load_items(_spec(tmp_path, "name: x\ndata: bad.jsonl\n"))
    write_jsonl(
        tmp_path / "dup.jsonl", [{"id": 1, "text": "a", "answer": 1}, {"id": 1, "text": "b", "answer": 2}]
    )
    with pytest.raises(DataError, match="duplicate id '1'"):
        load_items(_spec(tmp_path, "name: x\ndata: dup.jsonl\n"))
    write_jsonl(tmp_path / "nt.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match="no target field 'answer'"):
        load_items(_spec(tmp_path, "name: x\ndata: nt.jsonl\n"))


def test_csv_json_and_hf_dataset_folder(tmp_path: Path) -> None:
    rows = [{"id": i, "text": t, "label": y} for i, t, y in INTENT_ROWS[:4]]
    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "text", "label"])
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list(rows), "train": Dataset.from_list(rows[:2])}).save_to_disk(
        str(tmp_path / "hf")
    )
    for data, extra in (("d.csv", ""), ("d.json", ""), ("hf", "split: test\n")):
        items = load_items(_spec(tmp_path, f"name: x\ndata: {data}\ntarget_field: label\n{extra}"))
        assert [it.id for it in items] == ["a1", "a2", "a3", "a4"]
        assert items[2].target == "refund_request"
    with pytest.raises(ConfigError, match="has splits test, train"):
        load_items(_spec(tmp_path, "name: x\ndata: hf\ntarget_field: label\n"))


def test_prompt_builder_fixed_and_random_few_shot(intents_task: Path) -> None:
    spec = load_task(intents_task)
    items = load_items(spec)
    spec = spec.model_copy(update={"prompt": spec.prompt.model_copy(update={"few_shot": FewShotSpec(k=2)})})
    builder = PromptBuilder(spec, items)
    msgs = builder.messages(items[0])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"].startswith("Classify the message into one of: account_access, cancel_order")
    # the item is never its own exemplar
    assert msgs[1]["content"] == "Message: " + INTENT_ROWS[1][1] and msgs[2]["content"] == "cancel_order"
    assert msgs[-1]["content"] == "Message: " + INTENT_ROWS[0][1]
    assert builder.messages(items[5], shots=0)[1:] == [
        {"role": "user", "content": "Message: " + INTENT_ROWS[5][1]}
    ]
    rnd = spec.model_copy(
        update={"prompt": spec.prompt.model_copy(update={"few_shot": FewShotSpec(k=3, selection="random")})}
    )
    b2 = PromptBuilder(rnd, items)
    ex = b2.exemplars(items[3])
    assert len(ex) == 3 and items[3].id not in {e.id for e in ex}
    assert [e.id for e in ex] == [e.id for e in b2.exemplars(items[3])]  # seeded


def test_prompt_builder_nearest_neighbour_uses_embeddings(intents_task: Path) -> None:
    spec = load_task(intents_task)
    items = load_items(spec)
    spec = spec.model_copy(
        update={"prompt": spec.prompt.model_copy(update={"few_shot": FewShotSpec(k=1, selection="nearest")})}
    )
    builder = PromptBuilder(spec, items)
    # "Cancel my purchase of the chair" is closest to the other cancellation request
    assert [e.id for e in builder.exemplars(items[5])] == ["a2"]
    assert [e.id for e in builder.exemplars(items[6])] == ["a3"]  # money back ~ refund


def test_label_tasks_decode_under_a_label_grammar() -> None:
    from cadre.evaluate.task import GenerationSpec

    params = GenerationSpec().params(labels=["billing", "refund"])
    assert params.grammar == 'root ::= "billing" | "refund"\n'
    assert GenerationSpec().params().grammar is None  # not a classification: free generation
    assert GenerationSpec(constrain="off").params(labels=["billing", "refund"]).grammar is None
