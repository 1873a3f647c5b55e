"""The robustness battery: each perturbation changes what it should and keeps the answer right."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import ConfigError, NotFoundError
from cadre.evaluate.perturb import (
    PERTURBATIONS,
    PerturbContext,
    get_perturbation,
    load_hook,
    perturb_items,
    synth_resample_hook,
)
from cadre.evaluate.task import Item, TaskSpec, load_items, load_task


def _ctx(spec: TaskSpec, **kw: object) -> PerturbContext:
    return PerturbContext(spec=spec, **kw)  # type: ignore[arg-type]


def test_surface_noise_keeps_target_and_is_deterministic(intents_task: Path) -> None:
    spec = load_task(intents_task)
    items = load_items(spec)
    out = perturb_items(items, ["casing", "whitespace", "typos", "noop"], spec, seed=3)
    for name, pert in out.items():
        assert pert, name
        for new in pert:
            old = next(i for i in items if i.id == new.id)
            assert new.target == old.target and new.perturbation == name and new.original_id == old.id
            assert new.record["text"] != old.record["text"]
            assert old.record["text"] == next(i for i in load_items(spec) if i.id == old.id).record["text"]
    again = perturb_items(items, ["typos", "noop"], spec, seed=3)
    assert [i.record["text"] for i in again["typos"]] == [i.record["text"] for i in out["typos"]]
    other = perturb_items(items, ["noop"], spec, seed=4)
    assert [i.record["text"] for i in other["noop"]] != [i.record["text"] for i in out["noop"]]


def test_whitespace_and_casing_only_change_surface(intents_task: Path) -> None:
    spec = load_task(intents_task)
    it = load_items(spec)[0]
    ws = get_perturbation("whitespace").apply(it, _ctx(spec))
    assert ws is not None and ws.record["text"].split() == it.record["text"].split()
    cs = get_perturbation("casing").apply(it, _ctx(spec))
    assert cs is not None and cs.record["text"].lower() == it.record["text"].lower()


def test_noop_inserts_one_clause_and_typos_spare_the_answer(tmp_path: Path) -> None:
    spec = TaskSpec(name="x", data="d", input_field="text", noop_clauses=["Unrelated: my cat is called Io."])
    it = Item(
        id="1",
        record={"text": "Total due is 45 EUR. Vendor is Acme Supplies. Thanks!"},
        target="Acme Supplies",
    )
    new = get_perturbation("noop").apply(it, _ctx(spec))
    assert new is not None and new.record["text"].count("Unrelated: my cat is called Io.") == 1
    assert new.record["text"].replace("Unrelated: my cat is called Io. ", "") == it.record["text"]
    for seed in range(20):
        ty = get_perturbation("typos").apply(it, _ctx(spec, seed=seed))
        assert ty is not None
        assert "Acme Supplies" in ty.record["text"] and "45" in ty.record["text"]
        assert ty.record["text"] != it.record["text"]


def test_text_level_name_substitution_updates_the_reference() -> None:
    spec = TaskSpec(name="x", data="d", input_field="text", target_field="answer")
    it = Item(id="7", record={"text": "Sarah paid Tom 5 EUR. Who paid?", "answer": "Sarah"}, target="Sarah")
    new = get_perturbation("names").apply(it, _ctx(spec))
    assert new is not None
    sarah, tom = new.notes["mapping"]["Sarah"], new.notes["mapping"]["Tom"]
    assert new.record["text"] == f"{sarah} paid {tom} 5 EUR. Who paid?" and new.target == sarah
    assert (
        get_perturbation("names").apply(Item(id="8", record={"text": "no names"}, target="x"), _ctx(spec))
        is None
    )


def test_option_shuffle_moves_the_letter_answer() -> None:
    spec = TaskSpec(name="mc", data="d", input_field="q", options_field="options", target_field="answer")
    it = Item(id="q1", record={"q": "2+2?", "options": ["3", "4", "5", "6"], "answer": "B"}, target="B")
    new = get_perturbation("shuffle_options").apply(it, _ctx(spec))
    assert new is not None and sorted(new.record["options"]) == ["3", "4", "5", "6"]
    assert new.record["options"] != it.record["options"]
    assert new.record["options"][ord(new.target) - ord("A")] == "4" and new.record["answer"] == new.target
    text_answer = Item(
        id="q2", record={"q": "x", "options": ["red", "blue"], "answer": "blue"}, target="blue"
    )
    assert get_perturbation("shuffle_options").apply(text_answer, _ctx(spec)).target == "blue"  # type: ignore[union-attr]
    assert get_perturbation("shuffle_options").apply(it, _ctx(TaskSpec(name="y", data="d"))) is None


def test_number_resampling_recomputes_the_answer_through_synth() -> None:
    from cadre.synth import generate, get_generator

    gen = get_generator("invoices")
    recs = list(generate(gen, split="test", n=4, seed=0))
    spec = TaskSpec(name="inv", data="d", input_field="text", metric={"name": "json_field_match"})  # type: ignore[arg-type]
    items = [Item(id=r["id"], record=r, target=r["answer"]) for r in recs]
    out = perturb_items(items, ["numbers"], spec)["numbers"]
    assert len(out) == 4
    for old, new in zip(items, out):
        assert new.id == old.id and new.record["text"] != old.record["text"]
        assert new.target == gen.answer(new.record["fields"])  # recomputed from the new fields
        assert new.target["total"] != old.target["total"] and new.target["vendor"] == old.target["vendor"]
    # records that did not come from a generator cannot be re-sampled: the perturbation does not apply
    assert synth_resample_hook({"text": "hi"}, "numbers", 0) is None
    plain = Item(id="p", record={"text": "I paid 5 EUR"}, target="5")
    assert perturb_items([plain], ["numbers"], spec)["numbers"] == []


def test_custom_resample_hook_and_plugin_perturbation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "myhooks.py").write_text(
        "def double(record, kind, seed):\n"
        "    a = record['a'] * 2\n"
        "    return {**record, 'text': f\"What is {a} + 1?\", 'a': a, 'answer': a + 1}\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = TaskSpec(name="add", data="d", input_field="text", resample_hook="myhooks:double")
    it = Item(id="1", record={"text": "What is 3 + 1?", "a": 3, "answer": 4}, target=4)
    new = perturb_items([it], ["numbers"], spec)["numbers"][0]
    assert new.record["text"] == "What is 6 + 1?" and new.target == 7
    with pytest.raises(ConfigError, match="module:function"):
        load_hook("nocolon")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_hook("myhooks:missing")

    class Reverse:
        name = "reverse_words"
        description = "words in reverse order"
        changes_answer = False

        def apply(self, item: Item, ctx: PerturbContext) -> Item | None:
            rec = {
                **item.record,
                ctx.input_field: " ".join(reversed(str(item.record[ctx.input_field]).split())),
            }
            return Item(
                id=item.id, record=rec, target=item.target, perturbation=self.name, original_id=item.id
            )

    PERTURBATIONS.register("reverse_words", Reverse(), replace=True)
    assert perturb_items([it], ["reverse_words"], spec)["reverse_words"][0].record["text"] == "1? + 3 is What"
    with pytest.raises(NotFoundError, match="did you mean"):
        get_perturbation("typo")
