"""`cadre export --format ollama`: the Modelfile parses under Ollama's documented grammar, names files that exist,
and those files load and generate in llama.cpp (the adapter over the bundled SmolLM2, and the merged model).

The grammar checked here is the one in Ollama's docs/modelfile.md: ``# comment`` lines, ``INSTRUCTION arguments``
with instructions FROM (required), PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE (case-insensitive),
arguments bare, in double quotes, or in triple quotes spanning lines, and PARAMETER names from its table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cadre.errors import ConfigError, ModelLoadError, NotFoundError
from cadre.train.export_ollama_modelfile import export_ollama, ollama_model_name

INSTRUCTIONS = {"FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE"}
# Ollama's "Valid Parameters and Values" table: name -> value type.
PARAMETERS = {
    "mirostat": int,
    "mirostat_eta": float,
    "mirostat_tau": float,
    "num_ctx": int,
    "repeat_last_n": int,
    "repeat_penalty": float,
    "temperature": float,
    "seed": int,
    "stop": str,
    "num_predict": int,
    "top_k": int,
    "top_p": float,
    "min_p": float,
}
SYSTEM = "Classify the ticket: billing, refund, login or shipping."


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, argument) pairs; raises AssertionError on anything the documented grammar does not allow."""
    out: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"([A-Za-z]+)\s+(.*)$", line)
        assert m, f"not `INSTRUCTION arguments`: {line!r}"
        instruction, rest = m.group(1).upper(), m.group(2)
        assert instruction in INSTRUCTIONS, f"unknown instruction {instruction}"
        if rest.startswith('"""'):
            body = rest[3:]
            while '"""' not in body:
                assert i < len(lines), "unterminated triple-quoted argument"
                body += "\n" + lines[i]
                i += 1
            value, after = body.split('"""', 1)
            assert not after.strip(), f"text after the closing quotes: {after!r}"
        elif instruction == "PARAMETER":
            name, _, raw = rest.partition(" ")
            assert name in PARAMETERS, f"unknown parameter {name}"
            raw = raw.strip()
            if raw.startswith('"'):
                assert raw.endswith('"') and len(raw) >= 2, f"unbalanced quotes: {raw!r}"
                raw = raw[1:-1]
            PARAMETERS[name](raw)  # raises on a value of the wrong type
            value = f"{name} {raw}"
        elif rest.startswith('"'):
            assert rest.endswith('"') and len(rest) >= 2, f"unbalanced quotes: {rest!r}"
            value = rest[1:-1]
        else:
            value = rest.strip()
        out.append((instruction, value))
    assert [k for k, _ in out].count("FROM") == 1, "exactly one FROM is required"
    return out


@pytest.fixture(scope="module")
def smollm2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory as `cadre train` leaves it, with a random LoRA on two layers of the bundled SmolLM2."""
    from safetensors.numpy import save_file

    from cadre.formats import read_gguf_header
    from cadre.runtime.bundled import bundled_model_path

    base = bundled_model_path("smollm2-135m")
    meta = read_gguf_header(base).metadata
    hidden, n_head = int(meta["llama.embedding_length"]), int(meta["llama.attention.head_count"])
    n_kv = int(meta["llama.attention.head_count_kv"])
    kv_dim = hidden // n_head * n_kv
    run = tmp_path_factory.mktemp("smollm2-run") / "Intent_Run"
    run.mkdir()
    rng = np.random.default_rng(0)
    r = 4
    tensors = {}
    for layer in (0, 1):
        for module, rows in (("q_proj", hidden), ("v_proj", kv_dim)):
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((r, hidden)) * 0.01).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((rows, r)) * 0.01).astype(np.float32)
    save_file(tensors, str(run / "adapter_model.safetensors"))
    adapter_config = {"peft_type": "LORA", "r": r, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    (run / "adapter_config.json").write_text(json.dumps(adapter_config))
    base_info = {
        "name": "smollm2-135m",
        "kind": "gguf",
        "path": str(base),
        "architecture": "llama",
        "n_head": n_head,
        "n_head_kv": n_kv,
        "context_length": int(meta["llama.context_length"]),
    }
    (run / "cadre.json").write_text(json.dumps({"base": base_info}))
    (run / "train_config.json").write_text(json.dumps({"system": SYSTEM, "data": "train.jsonl"}))
    return run


def _check_export(result, run: Path) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    parsed = parse_modelfile(result.modelfile.read_text(encoding="utf-8"))
    by: dict[str, list[str]] = {}
    for key, value in parsed:
        by.setdefault(key, []).append(value)
    for key in ("FROM", "ADAPTER"):
        for ref in by.get(key, []):
            assert ref.startswith("./"), "paths are relative to the Modelfile, so the folder moves as a whole"
            assert (result.modelfile.parent / ref).is_file(), f"{key} {ref} does not exist"
    assert sorted(result.files) == sorted(
        result.modelfile.parent / r for r in by["FROM"] + by.get("ADAPTER", [])
    )
    assert by["SYSTEM"] == [SYSTEM]
    assert "stop <|im_end|>" in by["PARAMETER"]
    assert len(by["TEMPLATE"]) == 1 and "{{ range $i, $m := .Messages }}" in by["TEMPLATE"][0]
    assert result.create_command == f"ollama create intent_run -f {result.modelfile}"
    return by


def test_adapter_export_parses_and_names_real_files(smollm2_run: Path, tmp_path: Path) -> None:
    result = export_ollama(smollm2_run, tmp_path / "ollama")
    by = _check_export(result, smollm2_run)
    assert by["FROM"] == ["./SmolLM2-135M-Instruct.Q4_1.gguf"] and by["ADAPTER"] == ["./adapter.gguf"]
    assert not result.merged
    # the base is linked or copied whole
    from cadre.runtime.bundled import bundled_model_path

    assert (tmp_path / "ollama" / by["FROM"][0]).stat().st_size == bundled_model_path(
        "smollm2-135m"
    ).stat().st_size
    # exporting again over the same folder replaces the files
    again = export_ollama(smollm2_run, tmp_path / "ollama")
    assert again.modelfile.read_text() == result.modelfile.read_text()


def test_cli_prints_the_ollama_create_command(smollm2_run: Path, tmp_path: Path) -> None:
    from cadre.cli.main import app

    out = tmp_path / "o"
    res = CliRunner().invoke(
        app, ["export", str(smollm2_run), "--format", "ollama", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ollama_create"] == f"ollama create intent_run -f {out / 'Modelfile'}"
    assert data["format"] == "ollama" and len(data["files"]) == 2
    res = CliRunner().invoke(app, ["export", str(smollm2_run), "--format", "peft", "--merge"])
    assert res.exit_code != 0 and "--merge applies to --format ollama" in str(res.exception)


def test_bad_requests(smollm2_run: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        export_ollama(tmp_path / "missing")
    (tmp_path / "no-meta").mkdir()
    with pytest.raises(ModelLoadError, match=r"cadre\.json"):
        export_ollama(tmp_path / "no-meta")
    with pytest.raises(ConfigError, match="must differ"):
        export_ollama(smollm2_run, smollm2_run)
    hf_run = tmp_path / "hf-run"
    hf_run.mkdir()
    (hf_run / "cadre.json").write_text(json.dumps({"base": {"kind": "hf", "path": "/models/x"}}))
    with pytest.raises(ConfigError, match="Ollama needs a GGUF base"):
        export_ollama(hf_run)
    quoted = tmp_path / "quoted-run"
    quoted.mkdir()
    for f in smollm2_run.iterdir():
        (quoted / f.name).write_bytes(f.read_bytes())
    (quoted / "train_config.json").write_text(json.dumps({"system": 'say """hi"""'}))
    with pytest.raises(ConfigError, match="system prompt contains"):
        export_ollama(quoted, tmp_path / "q")
    assert ollama_model_name(Path("/runs/My Intent!")) == "my-intent"
    from cadre.train import export_adapter

    with pytest.raises(ConfigError, match="writes a folder"):
        export_adapter(smollm2_run, "ollama")


@pytest.mark.slow
@pytest.mark.parametrize("merge", [False, True], ids=["adapter", "merged"])
def test_named_files_load_and_generate_in_llama_cpp(smollm2_run: Path, tmp_path: Path, merge: bool) -> None:
    from llama_cpp import Llama

    from cadre.train.export_ollama_modelfile import base_chat_template
    from cadre.train.export_ollama_template import probe_turn_format

    result = export_ollama(smollm2_run, tmp_path / "ollama", merge=merge)
    by = _check_export(result, smollm2_run)
    folder = result.modelfile.parent
    adapter = [str(folder / a) for a in by.get("ADAPTER", [])]
    assert bool(adapter) is not merge
    llm = Llama(
        model_path=str(folder / by["FROM"][0]),
        lora_path=adapter[0] if adapter else None,
        n_ctx=256,
        n_threads=1,
        verbose=False,
    )
    try:
        template, adds_bos = base_chat_template(json.loads((smollm2_run / "cadre.json").read_text())["base"])
        turns = probe_turn_format(template, adds_bos=adds_bos)
        prompt = turns.render(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "refund please"}]
        )
        out = llm.create_completion(prompt, max_tokens=3, temperature=0.0)
        assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()
