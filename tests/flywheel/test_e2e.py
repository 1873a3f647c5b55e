"""The flywheel end to end (issue 18's "done when"): a hosted generalist (llama_cpp.server on loopback) answers
mixed generated traffic through `cadre serve` with capture on; `cadre traffic tasks` finds the tasks; one is
exported, a specialist trained on a tiny budget (a tiny random llama built here), compared, promoted, and then
answers its task through model="auto" while the other tasks still reach the generalist; rollback undoes it."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from cadre.cli.main import app
from cadre.synth import generate, get_generator
from cadre.traffic import open_store, read_actions

from .conftest import Gateway

ADMIN = "flywheel-admin-key-1"
TASKS = ("intents", "invoices", "normalize")


def _chats(task: str, n: int, split: str = "train") -> list[list[dict[str, str]]]:
    """The generator's requests as an application sends them: its feature's system prompt, then the user."""
    return [
        [m for m in r["messages"] if m["role"] in ("system", "user")]
        for r in generate(get_generator(task), split=split, n=n, seed=5)
    ]


def _tiny_base(out: Path) -> Path:
    """A 2-layer random llama with SmolLM2's tokenizer (read from the bundled GGUF)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from cadre.runtime.bundled import bundled_model_path

    gguf = bundled_model_path("smollm2-135m")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=1,
        eos_token_id=2, pad_token_id=2,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def _cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stderr carries the models' load logs


@pytest.mark.slow
def test_from_captured_traffic_to_a_promoted_specialist(tmp_path: Path, hosted_generalist: str) -> None:
    remote = f"openai:smollm2-135m@{hosted_generalist}"
    eco = tmp_path / "ecosystem.yaml"
    spec = {
        "specialists": [{"name": "weather", "base": remote, "description": "not trained yet: no examples"}],
        "generalist": {"model": remote, "decoding": {"max_tokens": 4}},
        "router": {"out_of_scope": [c[-1]["content"] for c in _chats("out_of_scope", 16)]},
        "server": {"admin": True},
        "capture": {
            "store": "traffic.db",
            "prices": {"generalist": {"input_per_mtok": 5, "output_per_mtok": 15}},
        },
    }
    eco.write_text(yaml.safe_dump(spec, sort_keys=False))
    chats = {task: _chats(task, 12) for task in TASKS}
    traffic = [(task, chats[task][i]) for i in range(12) for task in TASKS]
    with Gateway(eco, admin_key=ADMIN) as gw:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="-", max_retries=0, timeout=120)

        def ask(item: tuple[str, list[dict[str, str]]], model: str = "generalist") -> str:
            r = client.chat.completions.create(model=model, messages=item[1], max_tokens=4)  # type: ignore[arg-type]
            return r.id if model == "generalist" else r.model

        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(ask, traffic))
        assert gw.app.state.gateway.capture.recorder.flush()
        db = tmp_path / "traffic.db"

        # discover: the generated tasks, with the ARI against the generator's labels
        report = _cli("traffic", "tasks", str(db), "--k-range", "2-6")
        truth = dict(zip(ids, (t for t, _ in traffic), strict=True))
        with open_store(db) as store:
            rows = store.records()
            labels = {r.request_id: t for t in store.task_ids() for r in store.task_records(t)}
        assert len(rows) == len(traffic)
        ari = adjusted_rand_score([truth[r.request_id] for r in rows], [labels[r.request_id] for r in rows])
        print(f"flywheel e2e: k={report['k']}, ARI={ari:.3f}")
        assert report["k"] == 3 and ari > 0.8
        # the specialist to build: normalisation (the hosted SmolLM2 leaves invoice answers empty)
        task = max(
            set(labels.values()), key=lambda t: sum(truth[i] == "normalize" and labels[i] == t for i in ids)
        )

        # distill, train on a tiny budget, compare
        data = tmp_path / "data"
        exported = _cli(
            "traffic",
            "export",
            str(db),
            "--task",
            str(task),
            "--out",
            str(data),
            "--split",
            "0.75,0,0.25",
            "--include-truncated",
        )
        assert exported["counts"]["train"] >= 8 and exported["counts"]["test"] >= 2
        from cadre.train import TrainConfig, train

        base = _tiny_base(tmp_path / "tiny")
        run = tmp_path / "run"
        train(
            TrainConfig.model_validate(
                {
                    "base": str(base),
                    "data": exported["files"]["train"],
                    "out": str(run),
                    "max_steps": 4,
                    "batch_size": 4,
                    "max_length": 128,
                    "lora": {"rank": 4, "alpha": 8},
                    "eval_fraction": 0.0,
                }
            ),
            progress=False,
        )
        compared = _cli(
            "traffic", "compare", str(db), "--data", exported["files"]["test"],
            "--system", f"normalize={base},adapter={run}", "--max-tokens", "4",
        )  # fmt: skip
        exact = next(a for a in compared["agreement"] if a["measure"] == "exact_match")
        print(f"flywheel e2e: agreement with the generalist {exact['specialist']:.2f} "
              f"[{exact['low']:.2f}, {exact['high']:.2f}] on {compared['n']} held-out requests")  # fmt: skip
        assert (
            compared["n"] == exported["counts"]["test"]
            and exact["low"] <= exact["specialist"] <= exact["high"]
        )

        # promote: the router learns the new route; model="auto" sends normalisation to it, the rest to the generalist
        adapter = tmp_path / "adapters" / "normalize"
        shutil.copytree(run, adapter, ignore=shutil.ignore_patterns("checkpoints"))
        result = CliRunner().invoke(
            app,
            ["traffic", "promote", str(eco), "--name", "normalize", "--base", str(base), "--adapter", str(adapter),
             "--data", exported["files"]["train"], "--store", str(db), "--task", str(task), "--url", gw.url, "--json"],
            env={"CADRE_ADMIN_KEY": ADMIN},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        held_out = [("normalize", c) for c in _chats("normalize", 6, split="test")]
        others = [(t, c) for t in ("intents", "invoices") for c in _chats(t, 4, split="test")]
        routed = [ask(item, "auto") for item in held_out + others]
        print(f"flywheel e2e: after promotion {routed}")
        assert sum(m == "normalize" for m in routed[: len(held_out)]) >= len(held_out) - 1
        to_generalist = sum(m == "generalist" for m in routed[len(held_out) :])

        # rollback: the specialist is gone again
        result = CliRunner().invoke(
            app, ["traffic", "rollback", str(eco), "--url", gw.url], env={"CADRE_ADMIN_KEY": ADMIN}
        )
        assert result.exit_code == 0, result.output
        assert "normalize" not in [m.id for m in client.models.list().data]
    steps = [line.split()[1] for line in read_actions(tmp_path / "flywheel.log")]
    assert steps == ["tasks", "export", "compare", "promote", "rollback"]
    assert to_generalist >= len(others) - 1, (
        f"only {to_generalist}/{len(others)} other-task requests reached the generalist"
    )
