"""Bad model and adapter files are refused with one clear line, before llama.cpp sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
from lora_files import write_random_lora

from cadre.errors import ModelLoadError
from cadre.runtime.gguf_info import check_adapter_fits, read_gguf


def test_header_of_the_bundled_model(smollm2_gguf: Path) -> None:
    info = read_gguf(smollm2_gguf)
    assert (info.architecture, info.file_type, info.main_quantization) == ("llama", "model", "Q4_1")
    assert info.tensors["blk.0.attn_q.weight"] == (576, 576)
    assert info.chat_template and "<|im_start|>" in info.chat_template


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        read_gguf(tmp_path / "nope.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    p = tmp_path / "fake.gguf"
    p.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        read_gguf(p)


def test_truncated_gguf(tmp_path: Path, smollm2_gguf: Path) -> None:
    p = tmp_path / "cut.gguf"
    with smollm2_gguf.open("rb") as src:
        p.write_bytes(src.read(3_000_000))
    with pytest.raises(ModelLoadError, match=r"truncated|corrupt"):
        read_gguf(p)


def test_adapter_for_this_base_fits(tmp_path: Path, smollm2_gguf: Path) -> None:
    a = write_random_lora(smollm2_gguf, tmp_path / "ok.gguf", targets=("attn_q", "attn_v"))
    check_adapter_fits(read_gguf(a), read_gguf(smollm2_gguf))


def test_adapter_for_another_base_is_refused(tmp_path: Path, smollm2_gguf: Path) -> None:
    a = write_random_lora(smollm2_gguf, tmp_path / "wide.gguf", targets=("attn_q",), shape_factor=2)
    with pytest.raises(ModelLoadError, match="made for another base"):
        check_adapter_fits(read_gguf(a), read_gguf(smollm2_gguf))


def test_adapter_for_another_architecture_is_refused(tmp_path: Path, smollm2_gguf: Path) -> None:
    a = write_random_lora(smollm2_gguf, tmp_path / "g.gguf", targets=("attn_q",), architecture="gemma3")
    with pytest.raises(ModelLoadError, match="'gemma3' model but the base is 'llama'"):
        check_adapter_fits(read_gguf(a), read_gguf(smollm2_gguf))


def test_a_model_is_not_an_adapter(smollm2_gguf: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a LoRA adapter"):
        check_adapter_fits(read_gguf(smollm2_gguf), read_gguf(smollm2_gguf))
