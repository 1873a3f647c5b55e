"""llama.cpp specifics: several adapters over one base, per request, batched, hot-added."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lora_files import write_random_lora

from cadre.errors import ModelLoadError
from cadre.runtime import ChatRequest, SamplingParams, load_backend
from cadre.runtime.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.slow
P = SamplingParams(max_tokens=8)
MSG = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def multi(lora_pair: dict[str, Path]) -> Iterator[LlamaCppBackend]:
    b = load_backend("smollm2-135m", adapters=dict(lora_pair), n_ctx=512, n_parallel=4, n_threads=1)
    assert isinstance(b, LlamaCppBackend)
    yield b
    b.close()


def test_adapters_change_the_output_per_request(multi: LlamaCppBackend) -> None:
    assert multi.adapters() == ["alpha", "beta"]
    base = multi.chat(MSG, P).text
    alpha = multi.chat(MSG, P, adapter="alpha").text
    beta = multi.chat(MSG, P, adapter="beta").text
    assert len({base, alpha, beta}) == 3
    assert multi.chat(MSG, P).text == base  # switching back to the bare base restores it
    assert multi.chat(MSG, P, adapter="alpha").text == alpha


def test_mixed_batch_routes_each_request_to_its_adapter(multi: LlamaCppBackend) -> None:
    p = SamplingParams(max_tokens=8, logprobs=True)
    singles = {a: multi.chat(MSG, p, adapter=a) for a in (None, "alpha", "beta")}
    order = [None, "alpha", "beta", "alpha", None]
    batch = multi.batch_chat([ChatRequest(messages=MSG, params=p, adapter=a) for a in order])
    for a, c in zip(order, batch, strict=True):
        assert c.adapter == a
        assert c.logprobs and singles[a].logprobs
        # llama.cpp is not bit-identical between one sequence and several (F32 LoRA matmuls tile rows, and the
        # attention sums depend on where a sequence's cells sit in the shared KV cache): the first token must
        # agree and its logprob stay close (it moved by <= 0.05 in our runs); later near-ties may flip.
        assert c.logprobs[0].token == singles[a].logprobs[0].token
        assert c.logprobs[0].logprob == pytest.approx(singles[a].logprobs[0].logprob, abs=0.25)


def test_concurrent_threads_are_served(multi: LlamaCppBackend) -> None:
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda a: multi.chat(MSG, P, adapter=a).usage.completion_tokens, ["alpha"] * 4))
    assert all(0 < n <= 8 for n in outs)


def test_hot_add_and_replace(tmp_path: Path, multi: LlamaCppBackend, smollm2_gguf: Path) -> None:
    g = write_random_lora(
        smollm2_gguf, tmp_path / "gamma.gguf", seed=9, scale=0.3, targets=("attn_q", "ffn_up")
    )
    multi.load_adapter("gamma", g)
    assert "gamma" in multi.adapters()
    first = multi.chat(MSG, P, adapter="gamma").text
    g2 = write_random_lora(smollm2_gguf, tmp_path / "gamma2.gguf", seed=10, scale=0.3, targets=("attn_q",))
    multi.load_adapter("gamma", g2)
    assert multi.chat(MSG, P, adapter="gamma").text != first
    multi.remove_adapter("gamma")
    assert "gamma" not in multi.adapters()


def test_adapter_for_another_base_is_refused_before_loading(
    tmp_path: Path, multi: LlamaCppBackend, smollm2_gguf: Path
) -> None:
    bad = write_random_lora(smollm2_gguf, tmp_path / "bad.gguf", targets=("ffn_down",), shape_factor=2)
    with pytest.raises(ModelLoadError, match="made for another base"):
        multi.load_adapter("bad", bad)
    assert "bad" not in multi.adapters()


def test_corrupt_model_file_is_one_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "broken.gguf"
    p.write_bytes(b"GGUF" + b"\xff" * 64)
    with pytest.raises(ModelLoadError, match=r"corrupt|truncated|unsupported"):
        load_backend(str(p))


def test_an_adapter_is_not_a_model(lora_pair: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="is a LoRA adapter, not a model"):
        load_backend(str(lora_pair["alpha"]))


def test_stream_can_be_abandoned(multi: LlamaCppBackend) -> None:
    stream = multi.stream_chat(MSG, SamplingParams(max_tokens=64))
    next(iter(stream))
    stream.close()  # type: ignore[attr-defined]
    assert multi.chat(MSG, P).usage.completion_tokens > 0  # the engine freed the slot and goes on
