"""Answering with a label: grammar-constrained greedy decoding vs log-likelihood scoring of every label.

Same model, same adapter, same prompt text, one llama-cpp-python ``Llama`` object: for each test item of a
classification task from ``benchmarks/train_tasks.py`` (the labels are the training answers),

- **grammar**: ``create_completion(prompt, grammar=<one of the labels>, temperature=0)`` — the path
  ``cadre eval`` takes for label tasks (``generation.constrain: auto``, ``runtime.grammars.choice_grammar``);
- **log-likelihood**: the prompt is evaluated once, then each label followed by the end-of-turn token is
  evaluated over the prompt's KV cache (one batch per label) and the label with the largest summed token
  log-probability is the answer (lm-eval-harness's ``loglikelihood`` multiple choice, Gao et al. 2021).

Reported: accuracy and seconds per item for each, and the ratio measured item by item (the two methods run back
to back on every item, alternating which goes first, so machine load hits both alike).

    python benchmarks/train_label_scoring.py --task hwu64 --data ../shared/datasets/hwu64 \\
        --adapter runs/hwu64/run1/adapter-f32.gguf --test 60 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "src"))

from train_tasks import TASKS  # noqa: E402

END = "<|im_end|>"  # SmolLM2's end of turn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["hwu64", "pubmedqa"], default="hwu64")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--adapter", type=Path, help="GGUF LoRA adapter (default: the bare base)")
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from llama_cpp import Llama, LlamaGrammar

    from cadre.runtime import bundled_model_path
    from cadre.runtime.grammars import choice_grammar
    from cadre.runtime.templates import ChatTemplate

    task = TASKS[args.task](args.data, args.seed, args.test)
    labels = sorted({r["messages"][-1]["content"] for r in task.train})
    llm = Llama(
        model_path=str(bundled_model_path("smollm2-135m")),
        lora_path=str(args.adapter) if args.adapter else None,
        n_ctx=1024,
        n_threads=args.threads,
        logits_all=True,
        verbose=False,
    )
    template = ChatTemplate(
        llm.metadata["tokenizer.chat_template"], bos_token="", eos_token=END, model="smollm2-135m"
    )
    grammar = LlamaGrammar.from_string(choice_grammar(labels), verbose=False)
    label_tokens = {lab: llm.tokenize((lab + END).encode(), add_bos=False, special=True) for lab in labels}
    n_vocab = llm.n_vocab()

    def by_grammar(text: str) -> str:
        out = llm.create_completion(text, grammar=grammar, temperature=0.0, max_tokens=24)
        return str(out["choices"][0]["text"]).strip()  # type: ignore[index]

    def log_softmax(row: np.ndarray) -> np.ndarray:
        m = row.max()
        return row - (m + math.log(np.exp(row - m).sum()))

    def by_loglik(text: str) -> str:
        tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm._logits_all = False  # the prompt: logits of its last position only
        llm.eval(tokens)
        first = log_softmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy())
        llm._logits_all = True
        n = llm.n_tokens
        best, best_lp = labels[0], -math.inf
        for lab, toks in label_tokens.items():
            llm.n_tokens = n  # drop the previous label from the KV cache (eval removes positions >= n_tokens)
            llm.eval(toks[:-1])
            lp = first[toks[0]] + sum(log_softmax(llm.scores[n + i])[tok] for i, tok in enumerate(toks[1:]))
            if lp > best_lp:
                best, best_lp = lab, lp
        return best

    right = {"grammar": 0, "loglik": 0}
    secs: dict[str, list[float]] = {"grammar": [], "loglik": []}
    for i, row in enumerate(task.test):
        text = template.render(row["messages"][:-1])
        gold = row["messages"][-1]["content"]
        order = [("grammar", by_grammar), ("loglik", by_loglik)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            answer = fn(text)
            secs[name].append(time.perf_counter() - t0)
            right[name] += answer == gold
    n = len(task.test)
    ratios = [lk / g for g, lk in zip(secs["grammar"], secs["loglik"], strict=True)]
    result = {
        "task": args.task,
        "adapter": str(args.adapter) if args.adapter else None,
        "labels": len(labels),
        "items": n,
        "grammar_accuracy": right["grammar"] / n,
        "loglik_accuracy": right["loglik"] / n,
        "grammar_s_per_item": statistics.median(secs["grammar"]),
        "loglik_s_per_item": statistics.median(secs["loglik"]),
        "median_loglik_over_grammar": statistics.median(ratios),
        "threads": args.threads,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
