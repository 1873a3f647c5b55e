"""Bad model and adapter files are refused with one clear line, before llama.cpp sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from lora_files import write_random_lora

from cadre.errors import ModelLoadError
from cadre.formats import read_gguf_header
from cadre.runtime.gguf_adapters import check_adapter_fits


def test_header_of_the_bundled_model(smollm2_gguf: Path) -> None:
    info = read_gguf_header(smollm2_gguf)
    assert (info.architecture, info.kind, info.quantization) == ("llama", "model", "Q4_1")
    assert info.tensors["blk.0.attn_q.weight"] == (576, 576)
    assert info.chat_template and "<|im_start|>" in info.chat_template


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        read_gguf_header(tmp_path / "nope.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    p = tmp_path / "fake.gguf"
    p.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        read_gguf_header(p)


def test_truncated_gguf(tmp_path: Path, smollm2_gguf: Path) -> None:
    p = tmp_path / "cut.gguf"
    with smollm2_gguf.open("rb") as src:
        p.write_bytes(src.read(3_000_000))
    with pytest.raises(ModelLoadError, match=r"truncated|corrupt"):
        read_gguf_header(p)


def test_adapter_for_this_base_fits(tmp_path: Path, smollm2_gguf: Path) -> None:
    a = write_random_lora(smollm2_gguf, tmp_path / "ok.gguf", targets=("attn_q", "attn_v"))
    check_adapter_fits(read_gguf_header(a), read_gguf_header(smollm2_gguf))


def test_adapter_for_another_base_is_refused(tmp_path: Path, smollm2_gguf: Path) -> None:
    a = write_random_lora(smollm2_gguf, tmp_path / "wide.gguf", targets=("attn_q",), shape_factor=2)
    with pytest.raises(ModelLoadError, match="made for another base"):
        check_adapter_fits(read_gguf_header(a), read_gguf_header(smollm2_gguf))


def test_adapter_for_another_architecture_is_refused(tmp_path: Path, smollm2_gguf: Path) -> None:
    a = write_random_lora(smollm2_gguf, tmp_path / "g.gguf", targets=("attn_q",), architecture="gemma3")
    with pytest.raises(ModelLoadError, match="'gemma3' model but the base is 'llama'"):
        check_adapter_fits(read_gguf_header(a), read_gguf_header(smollm2_gguf))


def test_a_model_is_not_an_adapter(smollm2_gguf: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a LoRA adapter"):
        check_adapter_fits(read_gguf_header(smollm2_gguf), read_gguf_header(smollm2_gguf))


def test_quantization_label_is_the_file_type_not_the_biggest_tensor_type(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    p = tmp_path / "mixed.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    big = gguf.quants.quantize(np.zeros((64, 256), dtype=np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("token_embd.weight", big, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", np.zeros(256, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    info = read_gguf_header(p)
    assert (info.dominant_tensor_type, info.quantization) == ("Q8_0", "Q4_K_M")


@pytest.mark.slow
def test_bundled_gemma_is_labelled_q4_k_m() -> None:
    from cadre.runtime.bundled import bundled_model_path, list_models

    path = bundled_model_path("gemma3-270m")  # assembles the file once
    assert read_gguf_header(path).quantization == "Q4_K_M"
    row = next(r for r in list_models() if r["name"] == "gemma3-270m")
    assert row["quantization"] == "Q4_K_M"
