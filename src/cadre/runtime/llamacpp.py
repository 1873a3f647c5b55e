"""llama.cpp backend: one loaded GGUF base, several LoRA adapters over it, chosen per request, batched.

Built on llama-cpp-python's low-level ctypes API (not the high-level ``Llama`` class, which applies one
adapter at load time and runs one sequence at a time):

- the base model is loaded once (``llama_model_load_from_file``); each adapter is a
  ``llama_adapter_lora_init`` handle on that model (a few MB each);
- one context with a unified KV cache holds up to ``n_parallel`` sequences;
- an engine thread runs continuous batching: every step decodes one token for every running sequence of one
  adapter group in a single ``llama_decode`` (requests for the same specialist share the step), switching the
  context's adapter set with ``llama_set_adapters_lora`` between groups; which request is admitted and which
  group goes next is :mod:`cadre.runtime.scheduling`'s policy (longest wait first, so no adapter starves);
- greedy requests draft tokens by prompt lookup (:mod:`cadre.runtime.lookup`) and verify them in the same step;
- a request whose prompt starts like a running request's of the same adapter takes that request's KV cells for
  the shared tokens and prefills only the rest (:mod:`cadre.runtime.prefix`);
- callers (any thread) submit requests and read tokens from a queue, so streaming and concurrency come free.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import BackendError, ConfigError, ModelLoadError, NotFoundError
from cadre.formats import GGUFHeader, read_gguf_header
from cadre.paths import safe_name
from cadre.runtime.generation import (
    chat_from_stream,
    complete_from_stream,
    fit_prompt,
    unknown_adapter,
    with_template_stops,
)
from cadre.runtime.gguf_adapters import check_adapter_fits
from cadre.runtime.lookup import DraftPolicy, LookupSettings, LookupStats, NgramIndex, lookup_settings
from cadre.runtime.prefix import PrefixStats, longest_shared_prefix
from cadre.runtime.protocol import (
    ChatMessage,
    ChatRequest,
    Completion,
    FinishReason,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
    Usage,
    collect_stream,
)
from cadre.runtime.scheduling import burst_steps, pick_admission, pick_group
from cadre.runtime.stops import StopMatcher
from cadre.runtime.templates import ChatTemplate
from cadre.runtime.trained_prompt import TrainedPrompt, read_trained_prompt

if TYPE_CHECKING:
    from cadre.runtime.registry import ModelRef

__all__ = ["LlamaCppBackend"]

log = logging.getLogger(__name__)

_BACKEND_LOCK = threading.Lock()
_BACKEND_READY = False


def _lib() -> Any:
    """Import llama_cpp once, quiet its C logging (CADRE_DEBUG=1 keeps it) and initialise the backend."""
    global _BACKEND_READY
    # OpenMP workers spin between tokens by default and starve each other on a shared CPU (measured ~10x slower
    # on 2 cores); the policy is read when the library loads, so it is set just before.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import llama_cpp

    with _BACKEND_LOCK:
        if not _BACKEND_READY:
            logging.getLogger("llama-cpp-python").setLevel(
                logging.DEBUG if os.environ.get("CADRE_DEBUG") else logging.ERROR
            )
            from cadre.runtime.llamacpp_log import install

            install(
                llama_cpp
            )  # llama.cpp's warnings stay quiet unless CADRE_DEBUG (the package's levels are stale)
            llama_cpp.llama_backend_init()
            _BACKEND_READY = True
    return llama_cpp


def default_threads() -> int:
    """CPU threads for decoding: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(eq=False)
class _Adapter:
    name: str
    path: Path
    handle: Any
    size_bytes: int
    scale: float = 1.0
    prompt: TrainedPrompt | None = None  # the system prompt it was trained with (from its metadata)
    retired: bool = False
    in_use: int = 0
    lookup: LookupSettings | None = None


_DONE = object()


@dataclass(eq=False)
class _Seq:
    """One request in flight (owned by the engine thread once admitted)."""

    tokens: list[int]
    params: SamplingParams
    adapter: _Adapter | None
    out: queue.Queue[Any] = field(default_factory=queue.Queue)
    sampler: Any = None
    slot: int = -1
    n_prefilled: int = 0
    n_past: int = 0
    last: int = -1
    generated: int = 0
    reserve: int = 0
    charge: int = 0  # KV cells counted against the cache: the reservation less the cells it shares
    source: _Seq | None = None  # the running request whose first ``shared`` prompt cells it takes (or took)
    shared: int = 0
    cancelled: bool = False
    stop: StopMatcher | None = None
    decoder: Any = None
    index: NgramIndex | None = None  # prompt lookup (greedy requests only)
    waiting_since: float = (
        0.0  # arrival, then the last step that decoded it (the scheduler serves the oldest)
    )

    @property
    def awaits_prefix(self) -> bool:
        """It will take its source's cells once the source has computed them (it prefills nothing before)."""
        return self.source is not None and self.n_prefilled < self.shared

    @property
    def group(self) -> int:
        """The adapter group it decodes in (0: the bare base)."""
        return id(self.adapter) if self.adapter is not None else 0


class LlamaCppBackend:
    """A GGUF model in llama.cpp with named LoRA adapters; implements :class:`cadre.runtime.Backend`."""

    supports_grammar = True  # SamplingParams.grammar (GBNF) constrains the output
    serves_logprobs = True  # SamplingParams.logprobs / top_logprobs are answered

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        adapters: dict[str, str | Path] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_parallel: int = 8,
        kv_size: int | None = None,
        n_batch: int = 512,
        chat_template: str | None = None,
        prompt_lookup: bool | LookupSettings = True,
        prefix_sharing: bool = True,
    ) -> None:
        if n_ctx < 16:
            raise ConfigError(f"n_ctx must be >= 16, got {n_ctx}")
        if n_parallel < 1:
            raise ConfigError(f"n_parallel must be >= 1, got {n_parallel}")
        self.info: GGUFHeader = read_gguf_header(model_path, what="model")
        if self.info.kind == "adapter":
            raise ModelLoadError(
                f"{self.info.path} is a LoRA adapter, not a model; load the base model and pass the adapter "
                "with --adapter / adapters={...}"
            )
        self.path = self.info.path
        self.name = name or self.path.stem
        # a merged specialist (adapter folded in by `cadre export --format gguf-merged` or `cadre serve`)
        # carries its training-time prompt in the model file
        self.model_prompt: TrainedPrompt | None = read_trained_prompt(self.path, self.info.metadata)
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads or default_threads()
        # one shared (unified) KV cache; each request reserves min(prompt + max_tokens, n_ctx) cells of it
        self.kv_size = max(kv_size or n_ctx * min(n_parallel, 2), n_ctx)
        self.n_batch = max(n_batch, 32)
        # Prompt-lookup drafting for greedy requests (adapters may override it); see cadre.runtime.lookup.
        self.prompt_lookup = lookup_settings(prompt_lookup)
        self.lookup_stats = LookupStats()
        self.prefix_sharing = prefix_sharing
        self.prefix_stats = PrefixStats()
        self._draft_policy = DraftPolicy()
        self._switch_s = 0.0  # measured extra time of a decode right after an adapter switch
        lib = self._lib = _lib()

        mparams = lib.llama_model_default_params()
        model = lib.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {self.path} (unsupported architecture or damaged file); "
                "check it with `cadre models` or re-export it (CADRE_DEBUG=1 shows llama.cpp's log)"
            )
        self._model = model
        self._vocab = lib.llama_model_get_vocab(model)
        self.n_vocab = lib.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = lib.llama_model_n_ctx_train(model)

        cparams = lib.llama_context_default_params()
        cparams.n_ctx = self.kv_size
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = n_parallel
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = True  # a prefix copy then adds a sequence id to a cell instead of copying it
        cparams.swa_full = True  # sliding-window layers keep every cell, so a shared prefix stays whole
        cparams.no_perf = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise ModelLoadError(
                f"llama.cpp could not create a context of {self.kv_size} tokens; lower n_ctx"
            )
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx)
        self._batch = lib.llama_batch_init(self.n_batch, 0, 1)

        template = chat_template or self.info.chat_template
        self.template = ChatTemplate(
            template,
            bos_token=self._special_text(lib.llama_vocab_bos(self._vocab)),
            eos_token=self._special_text(lib.llama_vocab_eos(self._vocab)),
            model=self.name,
        )
        self._add_bos = bool(lib.llama_vocab_get_add_bos(self._vocab))

        self._adapters: dict[str, _Adapter] = {}
        self._retired: list[_Adapter] = []
        self._active_set: tuple[int, ...] = ()
        self._lock = threading.Lock()  # guards the context, adapters and model between engine and callers
        self._inbox: queue.Queue[_Seq | None] = queue.Queue()
        self._closed = False
        self._engine_error: BaseException | None = None
        for adapter_name, adapter_path in (adapters or {}).items():
            self.load_adapter(adapter_name, adapter_path)
        self._thread = threading.Thread(target=self._engine, name=f"cadre-llamacpp-{self.name}", daemon=True)
        self._thread.start()

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def from_ref(cls, ref: ModelRef, **options: Any) -> LlamaCppBackend:
        """Load ``ref`` with :func:`cadre.runtime.load_backend`'s options (adapters, n_ctx, n_threads, ...)."""
        return cls(ref.local_path("local GGUF file for llama.cpp"), name=ref.name, **options)

    # -- adapters -------------------------------------------------------------------------------------------

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    @property
    def kv_cache_bytes(self) -> int:
        """Bytes of the F16 KV cache allocated for ``kv_size`` cells (2 x layers x KV width x 2 bytes per cell)."""
        arch, md = self.info.architecture, self.info.metadata

        def number(key: str) -> int:  # 0 when absent or per-layer (a list)
            value = md.get(f"{arch}.{key}")
            return 0 if isinstance(value, list) else int(value or 0)

        n_layer, n_embd = number("block_count"), number("embedding_length")
        n_head = number("attention.head_count") or 1
        n_head_kv = number("attention.head_count_kv") or n_head
        head_dim = number("attention.key_length") or n_embd // n_head
        return 2 * n_layer * n_head_kv * head_dim * 2 * self.kv_size

    def adapter_bytes(self) -> dict[str, int]:
        """Size of each loaded adapter's file (its tensors live in RAM once loaded)."""
        return {name: a.size_bytes for name, a in self._adapters.items()}

    def load_adapter(
        self,
        name: str,
        path: str | Path,
        *,
        scale: float = 1.0,
        prompt_lookup: bool | LookupSettings | None = None,
    ) -> None:
        """Load (or replace) adapter ``name``; in-flight requests finish on the adapter they started with.

        ``prompt_lookup`` sets this specialist's prompt-lookup drafting (None: the model's setting).

        Raises:
            ModelLoadError: the file is missing/corrupt or was made for another base (checked before loading).
        """
        safe_name(name, kind="adapter")
        info = read_gguf_header(path, what="adapter")
        check_adapter_fits(info, self.info)
        handle = self._lib.llama_adapter_lora_init(self._model, str(info.path).encode())
        if not handle:
            raise ModelLoadError(
                f"llama.cpp refused adapter {info.path} for base {self.path.name}; re-export it for this base"
            )
        lookup = self.prompt_lookup if prompt_lookup is None else lookup_settings(prompt_lookup)
        adapter = _Adapter(
            name=name,
            path=info.path,
            handle=handle,
            size_bytes=info.file_size,
            scale=scale,
            prompt=read_trained_prompt(info.path, info.metadata),
            lookup=lookup,
        )
        with self._lock:
            old = self._adapters.get(name)
            self._adapters[name] = adapter
            if old is not None:
                self._retire(old)

    def remove_adapter(self, name: str) -> None:
        with self._lock:
            old = self._adapters.pop(name, None)
            if old is None:
                raise NotFoundError(
                    f"adapter {name!r} is not loaded; loaded: {', '.join(self.adapters()) or 'none'}"
                )
            self._retire(old)

    def _retire(self, adapter: _Adapter) -> None:
        # Called with the lock held. A handle still used by running sequences is freed when they finish.
        adapter.retired = True
        if adapter.in_use == 0:
            self._free_adapter(adapter)
        else:
            self._retired.append(adapter)

    def _free_adapter(self, adapter: _Adapter) -> None:
        if self._active_set and id(adapter) in self._active_set:
            self._lib.llama_set_adapters_lora(self._ctx, None, 0, None)
            self._active_set = ()
        self._lib.llama_adapter_lora_free(adapter.handle)
        adapter.handle = None

    def _adapter(self, name: str | None) -> _Adapter | None:
        if name is None:
            return None
        try:
            return self._adapters[name]
        except KeyError:
            raise unknown_adapter(name, self.name, self.adapters()) from None

    # -- tokens and text ------------------------------------------------------------------------------------

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._piece(token, special=True).decode("utf-8", errors="replace")

    def _piece(self, token: int, *, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        arr = (ctypes.c_int32 * cap)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), arr, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            arr = (ctypes.c_int32 * cap)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), arr, cap, add_special, parse_special)
        return list(arr[:n])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def render_chat(self, messages: Sequence[ChatMessage], *, adapter: str | None = None) -> str:
        """The prompt text the model sees for ``messages`` (the GGUF's chat template, after the training-time
        system prompt of ``adapter`` — or, without one, of a merged specialist's model file — is applied)."""
        return self.template.render(self._trained_messages(messages, adapter))

    def adapter_prompt(self, name: str) -> TrainedPrompt | None:
        """The training-time prompt recorded in adapter ``name``'s metadata (None: none recorded)."""
        return self._adapter(name).prompt  # type: ignore[union-attr]

    def _trained_messages(
        self, messages: Sequence[ChatMessage], adapter: str | None
    ) -> Sequence[ChatMessage]:
        loaded = self._adapters.get(adapter) if adapter is not None else None
        prompt = loaded.prompt if loaded is not None and loaded.prompt else self.model_prompt
        return prompt.apply(messages) if prompt is not None else messages

    def _prompt_tokens(self, text: str, *, templated: bool) -> list[int]:
        # A rendered chat template already holds the special tokens (and BOS when the template writes it).
        add_bos = self._add_bos and not (templated and self.template.starts_with_bos(text))
        tokens = self.tokenize(text, add_special=add_bos, parse_special=templated)
        if not tokens:
            raise BackendError("the prompt is empty after tokenization; send some text")
        return tokens

    # -- public generation API ------------------------------------------------------------------------------

    def stream_complete(
        self, prompt: str, params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        return self._stream(self._prompt_tokens(prompt, templated=False), params, adapter)

    def stream_chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Iterator[StreamChunk]:
        text = self.render_chat(messages, adapter=adapter)
        params = with_template_stops(params, self.template)
        return self._stream(self._prompt_tokens(text, templated=True), params, adapter)

    def complete(self, prompt: str, params: SamplingParams, *, adapter: str | None = None) -> Completion:
        return complete_from_stream(self, prompt, params, adapter)

    def chat(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        return chat_from_stream(self, messages, params, adapter)

    def batch_chat(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Run ``requests`` concurrently; those naming the same adapter decode together in one batch."""
        streams = [(r, self.stream_chat(r.messages, r.params, adapter=r.adapter)) for r in requests]
        seqs = [self._submit(stream) for _, stream in streams]
        return [
            _collect(seq, model=self.name, adapter=req.adapter, t0=t0)
            for (req, _), (seq, t0) in zip(streams, seqs, strict=True)
        ]

    def _submit(self, stream: Iterator[StreamChunk]) -> tuple[_Seq, float]:
        # Our streams are _Stream objects: start them now so the engine sees every request at once.
        assert isinstance(stream, _Stream)
        t0 = time.perf_counter()
        stream.start()
        return stream.seq, t0

    def _stream(
        self, tokens: list[int], params: SamplingParams, adapter_name: str | None
    ) -> Iterator[StreamChunk]:
        self._check_open()
        tokens = fit_prompt(tokens, params, self.n_ctx)
        if params.grammar is not None:
            self.check_grammar(params.grammar)
        seq = _Seq(tokens=tokens, params=params, adapter=self._adapter(adapter_name))
        seq.reserve = min(len(tokens) + params.max_tokens, self.n_ctx)
        seq.stop = StopMatcher(params.stop)
        seq.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return _Stream(self, seq)

    def _enqueue(self, seq: _Seq) -> None:
        self._check_open()
        if seq.adapter is not None:
            with self._lock:
                if seq.adapter.retired and seq.adapter.handle is None:
                    raise BackendError(f"adapter {seq.adapter.name!r} was removed; retry the request")
                seq.adapter.in_use += 1
        seq.waiting_since = time.perf_counter()
        self._inbox.put(seq)

    def _check_open(self) -> None:
        if self._engine_error is not None:
            raise BackendError(f"the llama.cpp engine stopped: {self._engine_error}; reload the model")
        if self._closed:
            raise BackendError(f"backend {self.name!r} is closed; load it again")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put(None)
        self._thread.join(timeout=30)
        lib = self._lib
        with self._lock:
            for adapter in [*self._adapters.values(), *self._retired]:
                if adapter.handle is not None:
                    lib.llama_adapter_lora_free(adapter.handle)
                    adapter.handle = None
            self._adapters.clear()
            self._retired.clear()
            lib.llama_batch_free(self._batch)
            lib.llama_free(self._ctx)
            lib.llama_model_free(self._model)

    def __enter__(self) -> LlamaCppBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten backend must not keep its thread alive
        if not getattr(self, "_closed", True):
            self._closed = True
            self._inbox.put(None)

    # -- the engine thread ----------------------------------------------------------------------------------

    def _engine(self) -> None:
        waiting: list[_Seq] = []  # arrival order
        running: list[_Seq] = []
        free_slots = list(range(self.n_parallel - 1, -1, -1))
        current: Hashable = None  # the group on the context now, and the steps it keeps it
        burst_left = 0
        try:
            while True:
                # 1. collect new requests (block only when idle)
                try:
                    while True:
                        item = self._inbox.get(block=not running and not waiting, timeout=None)
                        if item is None:
                            self._fail_all([*waiting, *running], BackendError("the backend was closed"))
                            return
                        waiting.append(item)
                        if not self._inbox.qsize():
                            break
                except queue.Empty:
                    pass
                # 2. admit while a slot and KV room are free: the oldest request of the adapter with the fewest
                #    running sequences first (cadre.runtime.scheduling), so no specialist is crowded out
                kv_used = sum(s.charge for s in running)
                while waiting and free_slots:
                    counts: dict[Hashable, int] = {}
                    for seq in running:
                        counts[seq.group] = counts.get(seq.group, 0) + 1
                    i = pick_admission(waiting, counts)
                    seq = waiting[i]
                    if seq.cancelled:
                        waiting.pop(i)
                        self._finish(seq, "stop", None)
                        continue
                    self._find_prefix(seq, running)
                    ready = seq.source is not None and seq.source.n_prefilled >= seq.shared
                    seq.charge = seq.reserve - (seq.shared if ready else 0)
                    if kv_used + seq.charge > self.kv_size:
                        seq.source, seq.shared = None, 0
                        break
                    waiting.pop(i)
                    seq.slot = free_slots.pop()
                    seq.sampler = self._make_sampler(seq.params)
                    seq.index = self._lookup_index(seq)
                    if ready:
                        self._copy_prefix(seq)
                    kv_used += seq.charge
                    running.append(seq)
                if not running:
                    continue
                # 3. one step for one adapter group: the one that waited longest, kept for a short burst after
                #    a switch when switching costs more than a step (see cadre.runtime.scheduling)
                groups: dict[Hashable, list[_Seq]] = {}
                for seq in running:
                    groups.setdefault(seq.group, []).append(seq)
                if burst_left <= 0 or current not in groups:
                    key = pick_group(groups)
                    burst_left = self._burst_len() if key != current else 1
                    current = key
                burst_left -= 1
                finished = self._step(groups[current])
                for seq, reason in finished:
                    running.remove(seq)
                    free_slots.append(seq.slot)
                    self._lib.llama_memory_seq_rm(self._mem, seq.slot, -1, -1)
                    seq.slot = -1
                    _pass_on_prefix(seq, running)
                    self._finish(seq, reason, None)
                if not running:
                    # Idle: empty the KV cache so the next request lands on the same cells as in a fresh
                    # process (llama.cpp's sums depend on cell placement; this keeps greedy runs repeatable).
                    self._lib.llama_memory_clear(self._mem, True)
                    free_slots.sort(reverse=True)
        except BaseException as err:
            self._engine_error = err
            log.exception("llama.cpp engine failed")
            self._fail_all([*waiting, *running], BackendError(f"llama.cpp engine failed: {err}"))

    def _find_prefix(self, seq: _Seq, running: Sequence[_Seq]) -> None:
        """Point ``seq`` at the running request of its adapter whose prompt shares most of its own."""
        seq.source, seq.shared = None, 0
        if not self.prefix_sharing:
            return
        peers = [s for s in running if s.group == seq.group and not s.cancelled]
        i, n = longest_shared_prefix(seq.tokens, [s.tokens for s in peers])
        if i >= 0:
            seq.source, seq.shared = peers[i], n

    def _copy_prefix(self, seq: _Seq) -> None:
        """Give ``seq`` its source's cells for the shared prompt tokens; it prefills from there."""
        assert seq.source is not None
        self._lib.llama_memory_seq_cp(self._mem, seq.source.slot, seq.slot, 0, seq.shared)
        seq.n_prefilled = seq.n_past = seq.shared
        seq.charge = seq.reserve - seq.shared
        self.prefix_stats.reused += seq.shared

    def _burst_len(self) -> int:
        """Steps a newly switched-to group keeps the context (1 unless switching costs more than a step)."""
        a, b = self._draft_policy.step_cost()
        return burst_steps(self._switch_s, a + b)

    def _fail_all(self, seqs: Sequence[_Seq], err: BaseException) -> None:
        for seq in seqs:
            self._finish(seq, "error", err)

    def _finish(self, seq: _Seq, reason: FinishReason, err: BaseException | None) -> None:
        if seq.sampler is not None:
            self._lib.llama_sampler_free(seq.sampler)
            seq.sampler = None
        if seq.adapter is not None:
            with self._lock:
                seq.adapter.in_use -= 1
                if seq.adapter.retired and seq.adapter.in_use == 0 and seq.adapter in self._retired:
                    self._retired.remove(seq.adapter)
                    self._free_adapter(seq.adapter)
        if err is not None:
            seq.out.put(err)
            return
        tail = seq.stop.flush() if seq.stop else ""
        tail += seq.decoder.decode(b"", final=True) if seq.decoder and reason != "stop" else ""
        usage = Usage(prompt_tokens=len(seq.tokens), completion_tokens=seq.generated)
        seq.out.put(StreamChunk(text=tail, finish_reason=reason, usage=usage))
        seq.out.put(_DONE)

    def _grammar_sampler(self, grammar: str) -> Any:
        """A grammar sampler (its tokens outside ``grammar`` get -inf); None when the GBNF does not parse."""
        return self._lib.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root") or None

    def check_grammar(self, grammar: str) -> None:
        """Raise ConfigError unless ``grammar`` is GBNF that llama.cpp accepts (checked before the request runs)."""
        sampler = self._grammar_sampler(grammar)
        if sampler is None:
            raise ConfigError("the grammar is not valid GBNF (llama.cpp refused it; its log says where)")
        self._lib.llama_sampler_free(sampler)

    def _make_sampler(self, params: SamplingParams) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if params.grammar is not None:
            # First in the chain: the samplers after it only see tokens the grammar allows. llama_sampler_sample
            # accepts the chosen token into the whole chain, which advances the grammar.
            grammar = self._grammar_sampler(params.grammar)
            if grammar is not None:  # checked when the request was made (check_grammar)
                lib.llama_sampler_chain_add(chain, grammar)
        if params.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        if params.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little")
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _set_adapter(self, adapter: _Adapter | None) -> bool:
        """Make ``adapter`` the context's adapter set; True when that changed it."""
        wanted = (id(adapter),) if adapter is not None else ()
        if wanted == self._active_set:
            return False
        lib = self._lib
        if adapter is None:
            rc = lib.llama_set_adapters_lora(self._ctx, None, 0, None)
        else:
            handles = (lib.llama_adapter_lora_p_ctypes * 1)(adapter.handle)
            scales = (ctypes.c_float * 1)(adapter.scale)
            rc = lib.llama_set_adapters_lora(self._ctx, handles, 1, scales)
        if rc != 0:
            raise BackendError(
                f"llama.cpp could not apply adapter {adapter.name if adapter else None!r} (rc={rc})"
            )
        self._active_set = wanted
        return True

    def _lookup_index(self, seq: _Seq) -> NgramIndex | None:
        """The prompt-lookup state of a newly admitted request, or None when it does not draft.

        Only greedy requests draft: the kept tokens are then exactly those plain decoding picks. (Sampling at
        temperature > 0 would need speculative sampling's accept/resample rule; it decodes plainly instead.)
        """
        settings = seq.adapter.lookup if seq.adapter is not None else self.prompt_lookup
        if settings is None or seq.params.temperature > 0:
            return None
        return NgramIndex(settings, tokens=list(seq.tokens))

    def _step(self, group: list[_Seq]) -> list[tuple[_Seq, FinishReason]]:
        """Decode one token for every running sequence of ``group`` (prefilling prompts as room allows).

        A sequence with a prompt-lookup draft puts its draft after its next token in the same batch, with
        logits at each position, and keeps the tokens up to the first one the model disagrees with.
        """
        lib = self._lib
        batch = self._batch
        n = 0
        sample_at: list[tuple[_Seq, int, list[int]]] = []

        def put(seq: _Seq, tok: int, pos: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = tok
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq.slot
            batch.logits[n] = logits
            n += 1

        # Tokens and outputs of this step before drafts, for the draft policy's cost model.
        n_out = sum(1 for s in group if not s.cancelled and s.n_prefilled >= len(s.tokens))
        n_plain = n_out + sum(len(s.tokens) - s.n_prefilled for s in group if not s.cancelled)
        n_plain = min(n_plain, self.n_batch)
        n_decode = n_out  # a decode-only step's tokens: one per decoding sequence, plus the drafts below
        key = group[0].group
        computed = {id(s): s.n_prefilled for s in group}  # prompt cells in the cache before this step
        for seq in group:
            if seq.cancelled:
                continue
            if seq.n_prefilled < len(seq.tokens):
                if seq.awaits_prefix:
                    assert seq.source is not None
                    done = computed.get(id(seq.source))
                    if done is not None and done >= seq.shared:
                        self._copy_prefix(seq)
                    elif done is None or seq.source.cancelled:
                        seq.source, seq.shared = None, 0  # its source went away: prefill it all
                    else:
                        continue  # the source has not computed the shared tokens yet
                room = self.n_batch - n
                if room <= 0:
                    continue
                chunk = seq.tokens[seq.n_prefilled : seq.n_prefilled + room]
                last = seq.n_prefilled + len(chunk) == len(seq.tokens)
                for j, tok in enumerate(chunk):
                    put(seq, tok, seq.n_past + j, last and j == len(chunk) - 1)
                seq.n_prefilled += len(chunk)
                self.prefix_stats.computed += len(chunk)
                seq.n_past += len(chunk)
                if last:
                    sample_at.append((seq, n - 1, []))
            elif n < self.n_batch:
                draft: list[int] = []
                if seq.index is not None:
                    # Room for the draft: the batch, the request's KV reservation, and its remaining tokens.
                    limit = min(
                        self.n_batch - n - 1,
                        seq.reserve - seq.n_past - 1,
                        seq.params.max_tokens - seq.generated - 1,
                    )
                    if seq.index.settings.adaptive:
                        limit = self._draft_policy.budget(
                            key, n_plain, n_out, min(limit, seq.index.draft_len)
                        )
                    draft = seq.index.draft(limit)
                    n_plain += len(draft)
                    n_decode += len(draft)
                start = n
                put(seq, seq.last, seq.n_past, True)
                for j, tok in enumerate(draft):
                    put(seq, tok, seq.n_past + 1 + j, True)
                sample_at.append((seq, start, draft))
                seq.n_past += 1
        finished: list[tuple[_Seq, FinishReason]] = [(s, "stop") for s in group if s.cancelled]
        if n == 0:
            return finished
        batch.n_tokens = n
        with self._lock:
            switched = self._set_adapter(group[0].adapter)
            t0 = time.perf_counter()
            rc = lib.llama_decode(self._ctx, batch)
            dt = time.perf_counter() - t0
        if switched:
            # The first decode after an adapter switch also re-plans llama.cpp's graph: its extra time is the
            # switch's cost (the scheduler sizes bursts from it), not a step's.
            a, b = self._draft_policy.step_cost()
            self._switch_s = 0.8 * self._switch_s + 0.2 * max(dt - (a + b * n), 0.0)
        elif n == n_decode:  # a decode-only step (prefill would skew the per-token cost)
            self._draft_policy.observe_step(n, dt)
        now = time.perf_counter()
        for seq in group:
            seq.waiting_since = now
        if rc != 0:
            raise BackendError(f"llama_decode failed (rc={rc}); the KV cache may be too small: raise kv_size")
        for seq, idx, draft in sample_at:
            reason = self._sample(seq, idx)
            accepted = 0
            # The draft token at row idx+j+1 was computed after draft[j]: valid only while the model agrees.
            while reason is None and accepted < len(draft) and seq.last == draft[accepted]:
                accepted += 1
                seq.n_past += 1
                reason = self._sample(seq, idx + accepted)
            if draft:
                assert seq.index is not None
                seq.index.record(len(draft), accepted)
                self._draft_policy.record(key, len(draft), accepted)
                self.lookup_stats.add(len(draft), accepted)
                if reason is None and accepted < len(draft):
                    # Drop the cells of the rejected draft tokens (positions n_past onwards).
                    lib.llama_memory_seq_rm(self._mem, seq.slot, seq.n_past, -1)
            if reason is not None:
                finished.append((seq, reason))
        return finished

    def _sample(self, seq: _Seq, idx: int) -> FinishReason | None:
        lib = self._lib
        token = lib.llama_sampler_sample(seq.sampler, self._ctx, idx)
        logprob: TokenLogprob | None = None
        if lib.llama_vocab_is_eog(self._vocab, token):
            return "stop"
        seq.generated += 1
        seq.last = token
        if seq.index is not None:
            seq.index.extend((token,))
        raw = self._piece(token)
        if seq.params.logprobs:
            logprob = self._logprob(idx, token, raw, seq.params.top_logprobs)
        text = seq.decoder.decode(raw)
        assert seq.stop is not None
        emit, stopped = seq.stop.feed(text)
        seq.out.put(StreamChunk(text=emit, logprob=logprob))
        if stopped:
            return "stop"
        if seq.generated >= seq.params.max_tokens:
            return "length"
        if seq.n_past >= self.n_ctx:
            return "length"
        return None

    def _logprob(self, idx: int, token: int, raw: bytes, n_top: int) -> TokenLogprob:
        """``token``'s log-probability under the model's distribution at batch row ``idx`` (its raw logits,
        before temperature, top-p or a grammar), with the ``n_top`` most likely tokens there."""
        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, idx), shape=(self.n_vocab,))
        peak = float(logits.max())
        lse = peak + math.log(float(np.exp(logits - peak).sum()))
        top: tuple[TokenLogprob, ...] = ()
        if n_top:
            best = np.argpartition(-logits, n_top - 1)[:n_top]
            best = best[np.argsort(-logits[best], kind="stable")]
            top = tuple(
                TokenLogprob(
                    token=(piece := self._piece(int(t))).decode("utf-8", errors="replace"),
                    logprob=float(logits[t]) - lse,
                    raw=piece,
                )
                for t in best
            )
        return TokenLogprob(
            token=raw.decode("utf-8", errors="replace"), logprob=float(logits[token]) - lse, raw=raw, top=top
        )


def _pass_on_prefix(gone: _Seq, running: Sequence[_Seq]) -> None:
    """``gone`` left the cache: the cells it shared stay with the request that took most of them, which now
    counts them; the others take theirs from that one (its cells cover their shorter prefixes)."""
    takers = [s for s in running if s.source is gone]
    if not takers:
        return
    heir = max(takers, key=lambda s: -1 if s.awaits_prefix else s.shared)
    for s in takers:
        if s.awaits_prefix:
            s.source, s.shared = None, 0  # a pending share whose cells never came: it prefills it all
        elif s is heir:
            s.charge += s.shared
            s.source, s.shared = None, 0
        else:
            s.source = heir


class _Stream:
    """The iterator a caller reads; the request is queued on first ``next()`` (or ``start()``)."""

    def __init__(self, backend: LlamaCppBackend, seq: _Seq) -> None:
        self.backend = backend
        self.seq = seq
        self.started = False
        self.done = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.backend._enqueue(self.seq)

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> StreamChunk:
        if self.done:
            raise StopIteration
        self.start()
        item = self.seq.out.get()
        if item is _DONE:
            self.done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self.done = True
            raise item
        chunk: StreamChunk = item
        return chunk

    def close(self) -> None:
        """Stop generating (a client went away); the engine frees the slot at its next step."""
        if not self.done:
            self.seq.cancelled = True
            self.done = True

    def __del__(self) -> None:
        if self.started and not self.done:
            self.seq.cancelled = True


def _collect(seq: _Seq, *, model: str, adapter: str | None, t0: float) -> Completion:
    def chunks() -> Iterator[StreamChunk]:
        while True:
            item = seq.out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    completion = collect_stream(chunks(), model=model, adapter=adapter)
    # collect_stream timed from its first pull; all requests were submitted at t0, so re-base on t0.
    offset = (time.perf_counter() - t0) - completion.seconds_total
    completion.seconds_total += offset
    completion.seconds_to_first_token += offset
    return completion
