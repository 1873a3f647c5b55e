"""Export to llama.cpp GGUF: tensor names, shapes, alpha, the q/k row permutation, and bad requests.

The end-to-end parity check against llama.cpp on the bundled model is in test_parity.py (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cadre.errors import ConfigError, ModelLoadError, NotFoundError
from cadre.train.export import export_adapter, permute_qk_rows


def test_permutation_is_the_inverse_of_transformers_gguf_loader() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    undo = LlamaTensorProcessor(config={})._reverse_permute_weights
    for n_head, head_dim, cols in [(9, 64, 8), (3, 64, 576), (4, 8, 1)]:
        w = rng.standard_normal((n_head * head_dim, cols)).astype(np.float32)
        p = permute_qk_rows(w, n_head)
        assert not np.array_equal(p, w)
        np.testing.assert_array_equal(undo(p, n_head, n_head), w)
    with pytest.raises(ValueError, match="cannot permute"):
        permute_qk_rows(np.zeros((10, 2)), 4)


@pytest.fixture(scope="module")
def tiny_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cadre.train.base import describe_base, resolve_base

    out = tmp_path_factory.mktemp("adapter")
    ref = resolve_base(str(tiny_base))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    torch.manual_seed(0)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    get_peft_model(model, lora).save_pretrained(str(out))
    (out / "cadre.json").write_text(json.dumps({"base": describe_base(ref, model.config).to_json()}))
    return out


def test_gguf_adapter_layout(tiny_adapter: Path, tmp_path: Path) -> None:
    import gguf
    from safetensors.numpy import load_file

    path = export_adapter(tiny_adapter, "gguf-adapter", out=tmp_path / "a.gguf")
    reader = gguf.GGUFReader(str(path))
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("general.architecture").contents() == "llama"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == pytest.approx(8.0)
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 * 4 * 2  # 2 layers x 4 modules x (a, b)
    # llama.cpp wants A as ne=(n_in, r) and B as ne=(r, n_out)
    assert list(tensors["blk.0.attn_q.weight.lora_a"].shape) == [32, 4]
    assert list(tensors["blk.0.attn_q.weight.lora_b"].shape) == [4, 32]
    assert list(tensors["blk.1.attn_k.weight.lora_b"].shape) == [4, 16]
    assert list(tensors["blk.1.ffn_down.weight.lora_a"].shape) == [64, 4]

    peft = load_file(str(tiny_adapter / "adapter_model.safetensors"))
    prefix = "base_model.model.model.layers.1."

    def b(name: str) -> np.ndarray:
        return np.asarray(tensors[name].data)

    np.testing.assert_allclose(
        b("blk.1.attn_q.weight.lora_b"), permute_qk_rows(peft[prefix + "self_attn.q_proj.lora_B.weight"], 4)
    )
    np.testing.assert_allclose(
        b("blk.1.attn_k.weight.lora_b"), permute_qk_rows(peft[prefix + "self_attn.k_proj.lora_B.weight"], 2)
    )
    np.testing.assert_allclose(
        b("blk.1.attn_v.weight.lora_b"), peft[prefix + "self_attn.v_proj.lora_B.weight"]
    )
    np.testing.assert_allclose(
        b("blk.1.attn_q.weight.lora_a"), peft[prefix + "self_attn.q_proj.lora_A.weight"]
    )

    unpermuted = export_adapter(tiny_adapter, "gguf-adapter", out=tmp_path / "u.gguf", _permute_qk=False)
    raw = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(unpermuted)).tensors}
    np.testing.assert_allclose(
        raw["blk.1.attn_q.weight.lora_b"], peft[prefix + "self_attn.q_proj.lora_B.weight"]
    )


def test_f16_adapter_and_default_name(tiny_adapter: Path) -> None:
    import gguf

    path = export_adapter(tiny_adapter, "gguf-adapter", quant="f16")
    assert path == tiny_adapter / "adapter-f16.gguf"
    types = {t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
    assert types == {gguf.GGMLQuantizationType.F16}


def test_peft_copy(tiny_adapter: Path, tmp_path: Path) -> None:
    out = export_adapter(tiny_adapter, "peft", out=tmp_path / "p")
    assert {"adapter_config.json", "adapter_model.safetensors", "cadre.json"} <= {
        f.name for f in out.iterdir()
    }


def test_bad_export_requests(tiny_adapter: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown export format"):
        export_adapter(tiny_adapter, "onnx")
    with pytest.raises(ConfigError, match="unknown --quant"):
        export_adapter(tiny_adapter, "gguf-adapter", quant="Q2_K")
    with pytest.raises(ConfigError, match="GGUF formats only"):
        export_adapter(tiny_adapter, "peft", quant="F16")
    with pytest.raises(ConfigError, match="block size"):  # rank 4 rows cannot be Q8_0 blocks of 32
        export_adapter(tiny_adapter, "gguf-adapter", quant="Q8_0")
    with pytest.raises(ConfigError, match="needs a GGUF base"):
        export_adapter(tiny_adapter, "gguf-merged")
    with pytest.raises(NotFoundError, match="does not exist"):
        export_adapter(tmp_path / "nowhere", "gguf-adapter")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "adapter_model.bin").write_bytes(b"\x80\x04")
    (tmp_path / "pickled" / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="never pickled"):
        export_adapter(tmp_path / "pickled", "gguf-adapter")


def test_merged_gguf_carries_the_training_time_prompt(tiny_adapter: Path, tmp_path: Path) -> None:
    import shutil

    import gguf

    from cadre.formats import read_gguf_header
    from cadre.runtime.trained_prompt import TrainedPrompt, read_trained_prompt

    # a GGUF base with the tiny llama's shapes (ne = n_in, n_out; numpy's order is the reverse)
    shapes = {"attn_q": (32, 32), "attn_k": (16, 32), "attn_v": (16, 32), "ffn_down": (32, 64)}
    base = tmp_path / "base.gguf"
    writer = gguf.GGUFWriter(str(base), "llama")
    writer.add_uint32("llama.block_count", 2)
    writer.add_string("cadre.prompt.mode", "drop")  # a stale key of the base is replaced, not duplicated
    for layer in range(2):
        for name, shape in shapes.items():
            writer.add_tensor(f"blk.{layer}.{name}.weight", np.zeros(shape, dtype=np.float32))
    for step in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        step()
    writer.close()

    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run)
    meta = json.loads((run / "cadre.json").read_text())
    meta["base"] = {**meta["base"], "kind": "gguf", "path": str(base)}
    trained = TrainedPrompt("replace", "Intent?", "Classify: billing, refund, login or shipping.")
    meta["prompt"] = trained.to_json()
    (run / "cadre.json").write_text(json.dumps(meta))

    merged = export_adapter(run, "gguf-merged", out=tmp_path / "merged.gguf")
    assert read_gguf_header(merged).kind == "model"
    assert read_trained_prompt(merged) == trained
    assert [f.name for f in gguf.GGUFReader(str(merged)).fields.values()].count("cadre.prompt.mode") == 1
    assert read_trained_prompt(export_adapter(run, "gguf-adapter", out=tmp_path / "a.gguf")) == trained
