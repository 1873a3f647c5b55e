"""transformers backend: HF model folders, GGUF files (dequantized via ``gguf_file=``), PEFT LoRA adapters.

CPU by default, CUDA when present. Decoding is a plain loop over the KV cache (not ``generate``), so that
streaming, stop strings, seeds and per-token logprobs behave exactly as in the other backends. Adapters are
loaded into one ``PeftModel`` over the shared base and chosen per request (``set_adapter`` /
``disable_adapter``); generation runs one request at a time under a lock.
"""

from __future__ import annotations

import inspect
import json
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadre.errors import BackendError, ConfigError, ModelLoadError, NotFoundError
from cadre.paths import safe_name
from cadre.runtime.generation import (
    chat_from_stream,
    complete_from_stream,
    fit_prompt,
    unknown_adapter,
    with_template_stops,
)
from cadre.runtime.protocol import (
    ChatMessage,
    ChatRequest,
    Completion,
    FinishReason,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
    Usage,
)
from cadre.runtime.stops import StopMatcher
from cadre.runtime.templates import ChatTemplate
from cadre.runtime.trained_prompt import TrainedPrompt, read_trained_prompt

if TYPE_CHECKING:
    from cadre.runtime.registry import ModelRef

__all__ = ["TransformersBackend", "check_peft_adapter_fits"]


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def check_peft_adapter_fits(adapter_dir: Path, model: Any) -> None:
    """Check a PEFT LoRA folder against a loaded base model's modules and shapes, before loading it.

    Raises:
        ModelLoadError: naming the first module that is missing or has another shape.
    """
    cfg_path, weights = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise ModelLoadError(
            f"{adapter_dir} is not a PEFT adapter folder (needs adapter_config.json and "
            "adapter_model.safetensors); pass the folder `cadre train` wrote"
        )
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        raise ModelLoadError(
            f"{adapter_dir} is a {cfg.get('peft_type')} adapter; only LoRA adapters are supported"
        )
    modules = dict(model.named_modules())
    checked = 0
    for key, shape in _safetensors_shapes(weights).items():
        for part, dim in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if not key.endswith(part):
                continue
            module_name = key.removeprefix("base_model.model.").removesuffix(part)
            module = modules.get(module_name)
            if module is None or not hasattr(module, "weight"):
                raise ModelLoadError(
                    f"adapter {adapter_dir.name} targets {module_name}, which this base does not have; "
                    "it was made for another base model"
                )
            out_f, in_f = module.weight.shape[0], module.weight.shape[1]
            expected = in_f if dim == 1 else out_f
            if shape[dim] != expected:
                raise ModelLoadError(
                    f"adapter {adapter_dir.name} was made for another base: {module_name} has shape "
                    f"({out_f}, {in_f}) here but the adapter expects {'in' if dim else 'out'}_features={shape[dim]}; "
                    "load it over the base it was trained on"
                )
            checked += 1
    if checked == 0:
        raise ModelLoadError(f"adapter {adapter_dir.name} holds no LoRA weights; re-train or re-export it")


class TransformersBackend:
    """A causal LM in transformers (+PEFT adapters); implements :class:`cadre.runtime.Backend`."""

    serves_logprobs = True  # SamplingParams.logprobs / top_logprobs are answered

    def __init__(
        self,
        path: str | Path,
        *,
        gguf_file: str | None = None,
        name: str | None = None,
        adapters: dict[str, str | Path] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        folder = Path(path).expanduser()
        if not folder.exists():
            raise NotFoundError(f"model folder {str(folder)!r} does not exist; check the path")
        if n_threads:
            torch.set_num_threads(n_threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = {
            "auto": torch.bfloat16 if self.device == "cuda" else torch.float32,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }.get(dtype)
        if torch_dtype is None:
            raise ConfigError(f"dtype {dtype!r}: use auto, float32, bfloat16 or float16")
        kw: dict[str, Any] = {"local_files_only": True}
        if gguf_file:
            kw["gguf_file"] = gguf_file
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), **kw)
            base: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype, **kw)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            what = f"{folder / gguf_file}" if gguf_file else str(folder)
            raise ModelLoadError(
                f"transformers could not load {what} ({type(err).__name__}: {err})"
            ) from None
        base.to(self.device).eval()
        self.name = name or (Path(gguf_file).stem if gguf_file else folder.name)
        self.path = folder
        max_pos = int(getattr(base.config, "max_position_embeddings", n_ctx) or n_ctx)
        self.n_ctx = min(n_ctx, max_pos)
        self._base: Any = base
        # transformers 5 renamed the KV-cache argument from past_key_values to cache
        self._cache_kw = (
            "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        )
        self._model: Any = base  # becomes a PeftModel once an adapter is loaded
        self._adapters: dict[str, Path] = {}
        self._prompts: dict[str, TrainedPrompt] = {}  # training-time prompts from the adapters' cadre.json
        self._lock = threading.Lock()
        source = getattr(self.tokenizer, "chat_template", None)
        self.template = ChatTemplate(
            source if isinstance(source, str) else None,
            bos_token=self.tokenizer.bos_token or "",
            eos_token=self.tokenizer.eos_token or "",
            model=self.name,
        )
        eos = getattr(base.generation_config, "eos_token_id", None)
        eos_ids = eos if isinstance(eos, list) else [eos]
        if self.tokenizer.eos_token_id is not None:
            eos_ids.append(self.tokenizer.eos_token_id)
        self._eos = {int(e) for e in eos_ids if e is not None}
        for adapter_name, adapter_path in (adapters or {}).items():
            self.load_adapter(adapter_name, adapter_path)

    @classmethod
    def from_ref(cls, ref: ModelRef, **options: Any) -> TransformersBackend:
        """Load ``ref`` with :func:`cadre.runtime.load_backend`'s options (adapters, n_ctx, n_threads, ...)."""
        path = ref.local_path("local files for transformers")
        return cls(path, gguf_file=ref.gguf_file, name=ref.name, **options)

    # -- adapters -------------------------------------------------------------------------------------------

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load (or replace) PEFT LoRA adapter ``name`` from a folder; checked against the base first."""
        safe_name(name, kind="adapter")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise NotFoundError(
                f"adapter folder {str(folder)!r} does not exist; pass the folder `cadre train` wrote"
            )
        check_peft_adapter_fits(folder, self._base)
        from peft import PeftModel

        with self._lock:
            if self._model is self._base:
                self._model = PeftModel.from_pretrained(
                    self._base, str(folder), adapter_name=name, is_trainable=False
                )
            else:
                if name in self._adapters:
                    self._model.delete_adapter(name)
                self._model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
            self._model.eval()
            self._adapters[name] = folder
            prompt = read_trained_prompt(folder)
            if prompt is None:
                self._prompts.pop(name, None)
            else:
                self._prompts[name] = prompt

    # -- text -----------------------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render_chat(self, messages: Sequence[ChatMessage], *, adapter: str | None = None) -> str:
        """The prompt text for ``messages`` (with ``adapter``: after its training-time prompt is applied)."""
        prompt = self._prompts.get(adapter) if adapter is not None else None
        return self.template.render(prompt.apply(messages) if prompt else messages)

    def _encode(self, text: str, *, templated: bool) -> list[int]:
        add_special = not (templated and self.template.starts_with_bos(text))
        ids: list[int] = self.tokenizer(text, add_special_tokens=add_special and not templated)["input_ids"]
        if not ids:
            raise BackendError("the prompt is empty after tokenization; send some text")
        return ids

    # -- generation -----------------------------------------------------------------------------------------

    def _generate(self, ids: list[int], params: SamplingParams, adapter: str | None) -> Iterator[StreamChunk]:
        torch = self._torch
        if adapter is not None and adapter not in self._adapters:
            raise unknown_adapter(adapter, self.name, self.adapters())
        ids = fit_prompt(ids, params, self.n_ctx)
        stop = StopMatcher(params.stop)
        generator = None
        if params.temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(params.seed if params.seed is not None else int(time.time_ns() % 2**31))
        generated: list[int] = []
        emitted = ""
        finish: FinishReason = "length"
        with self._lock, torch.inference_mode(), self._adapter_context(adapter):
            model = self._model
            inputs = torch.tensor([ids], device=self.device)
            past: Any = None
            for _ in range(params.max_tokens):
                if len(ids) + len(generated) >= self.n_ctx:
                    break
                out = model(input_ids=inputs, use_cache=True, logits_to_keep=1, **{self._cache_kw: past})
                past = out["cache"] if "cache" in out else out["past_key_values"]
                logits = out.logits[0, -1].float()
                token = self._pick(logits, params, generator)
                if token in self._eos:
                    finish = "stop"
                    break
                generated.append(token)
                logprob = None
                if params.logprobs:
                    logprob = self._logprob(logits, token, params.top_logprobs)
                text = self._decode(generated)
                new = ""
                if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                    new, emitted = text[len(emitted) :], text
                piece, stopped = stop.feed(new)
                yield StreamChunk(text=piece, logprob=logprob)
                if stopped:
                    finish = "stop"
                    break
                inputs = torch.tensor([[token]], device=self.device)
        tail = ""
        if not stop.stopped:
            rest = self._decode(generated)[len(emitted) :]
            tail, hit = stop.feed(rest)
            tail += stop.flush()
            finish = "stop" if hit else finish
        yield StreamChunk(
            text=tail,
            finish_reason=finish,
            usage=Usage(prompt_tokens=len(ids), completion_tokens=len(generated)),
        )

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _logprob(self, logits: Any, token: int, n_top: int) -> TokenLogprob:
        """``token``'s log-probability under ``logits`` (before temperature and top-p), with the ``n_top`` most
        likely tokens."""
        lps = self._torch.log_softmax(logits, dim=-1)
        top: tuple[TokenLogprob, ...] = ()
        if n_top:
            values, ids = self._torch.topk(lps, n_top)
            top = tuple(
                TokenLogprob(token=self._decode([int(i)]), logprob=float(v))
                for v, i in zip(values.tolist(), ids.tolist())
            )
        return TokenLogprob(token=self._decode([token]), logprob=float(lps[token]), top=top)

    def _pick(self, logits: Any, params: SamplingParams, generator: Any) -> int:
        torch = self._torch
        if params.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            # nucleus sampling (Holtzman et al. 2019): keep the smallest set whose mass reaches top_p
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p
            sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
            choice = torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=generator)
            return int(order[choice])
        return int(torch.multinomial(probs, 1, generator=generator))

    def _adapter_context(self, adapter: str | None) -> Any:
        from contextlib import nullcontext

        if self._model is self._base:
            return nullcontext()
        if adapter is None:
            return self._model.disable_adapter()
        self._model.set_adapter(adapter)
        return nullcontext()

    # -- Backend API ----------------------------------------------------------------------------------------

    def stream_complete(
        self, prompt: str, params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        return self._generate(self._encode(prompt, templated=False), params, adapter)

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        params = with_template_stops(params, self.template)
        text = self.render_chat(messages, adapter=adapter)
        return self._generate(self._encode(text, templated=True), params, adapter)

    def complete(self, prompt: str, params: SamplingParams, *, adapter: str | None = None) -> Completion:
        return complete_from_stream(self, prompt, params, adapter)

    def chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        return chat_from_stream(self, messages, params, adapter)

    def batch_chat(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Run the requests grouped by adapter (one at a time: this backend is for checks, not throughput)."""
        order = sorted(range(len(requests)), key=lambda i: requests[i].adapter or "")
        results: dict[int, Completion] = {}
        for i in order:
            r = requests[i]
            results[i] = self.chat(r.messages, r.params, adapter=r.adapter)
        return [results[i] for i in range(len(requests))]

    def close(self) -> None:
        self._model = None
        self._base = None

    def __enter__(self) -> TransformersBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
