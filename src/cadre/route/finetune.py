"""Few-shot contrastive fine-tuning of the routing encoder (SetFit-style pairs), and loading it back.

SetFit (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts") fine-tunes a sentence encoder on
pairs drawn from the labelled examples (same route -> cosine target 1, different routes -> 0) with
sentence-transformers' ``CosineSimilarityLoss``, then fits a head on the new embeddings. cadre does the same with
sentence-transformers' own trainer, on CPU, with a fixed budget of pairs; out-of-scope examples (if any) form one
more class, so the encoder also learns to push them away from every route.

The fine-tuned encoder is saved inside the router directory (``encoder/``, safetensors) and its id carries a
digest of its weights: ``<base id>+finetuned:<sha256 prefix>``. A router refuses to load with any other encoder.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cadre.errors import ModelLoadError
from cadre.route.protocol import Embedder
from cadre.route.weights import weights_digest

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from cadre.route.encoders import EncoderForm

__all__ = ["ENCODER_DIR", "finetune_encoder", "load_finetuned", "make_pairs", "weights_digest"]

ENCODER_DIR = "encoder"


def make_pairs(
    texts: Sequence[str], labels: NDArray[np.int64], *, n_pairs: int, seed: int
) -> tuple[list[str], list[str], list[float]]:
    """SetFit pair sampling: for each anchor in turn, one same-label pair (1.0) and one other-label pair (0.0)."""
    rng = np.random.default_rng(seed)
    by_label = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    a: list[str] = []
    b: list[str] = []
    target: list[float] = []
    order = rng.permutation(len(texts))
    i = 0
    while len(a) < n_pairs:
        anchor = int(order[i % len(order)])
        i += 1
        same = by_label[int(labels[anchor])]
        if len(same) > 1:
            j = int(rng.choice(same[same != anchor]))
            a.append(texts[anchor])
            b.append(texts[j])
            target.append(1.0)
        other = np.flatnonzero(labels != labels[anchor])
        if len(other):
            a.append(texts[anchor])
            b.append(texts[int(rng.choice(other))])
            target.append(0.0)
    return a[:n_pairs], b[:n_pairs], target[:n_pairs]


def _base_model(base_path: str | Path) -> Any:
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(base_path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load embedding model from {base_path}: {err}") from None


def finetune_encoder(
    base_path: str | Path,
    texts: Sequence[str],
    labels: NDArray[np.int64],
    *,
    n_pairs: int,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    seed: int = 0,
) -> Any:
    """A copy of the sentence-transformers model at ``base_path`` fine-tuned on SetFit pairs of (texts, labels).

    Returns the fine-tuned ``SentenceTransformer`` (on CPU, in eval mode).
    """
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    model = _base_model(base_path)
    a, b, target = make_pairs(texts, labels, n_pairs=n_pairs, seed=seed)
    data = Dataset.from_dict({"sentence1": a, "sentence2": b, "label": target}).shuffle(seed=seed)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            num_train_epochs=epochs,
            learning_rate=learning_rate,
            warmup_ratio=0.1,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            seed=seed,
            use_cpu=True,
            dataloader_num_workers=0,
        )
        torch.manual_seed(seed)
        SentenceTransformerTrainer(
            model=model, args=args, train_dataset=data, loss=CosineSimilarityLoss(model)
        ).train()
    model.eval()
    return model


def finetuned_id(base_id: str, model: Any) -> str:
    return f"{base_id}+finetuned:{weights_digest(model)[:16]}"


def wrap(model: Any, model_id: str, form: EncoderForm | None = None) -> Embedder:
    """An Embedder over a loaded (fine-tuned) model, in ``form`` (see ``cadre.route.encoders``)."""
    from cadre.route.encoders import EncoderForm, reduce_precision

    return reduce_precision(model, form or EncoderForm(), model_id)


def save_encoder(model: Any, directory: Path) -> None:
    """Write the encoder as a sentence-transformers folder (weights in safetensors) under ``directory``."""
    model.save(str(directory / ENCODER_DIR), create_model_card=False, safe_serialization=True)


def load_finetuned(directory: Path, model_id: str, form: EncoderForm | None = None) -> Embedder:
    """The fine-tuned encoder saved in a router directory; its weights must match ``model_id``'s digest.

    Raises:
        ModelLoadError: the folder is missing, unreadable, or holds other weights than the router was fitted with.
    """
    folder = directory / ENCODER_DIR
    if not (folder / "modules.json").is_file():
        raise ModelLoadError(
            f"router {directory} was fitted with a fine-tuned encoder but {folder} is missing; "
            f"copy the whole router directory, or refit: cadre route fit --data FILE --out {directory}"
        )
    model = _base_model(folder)
    model.eval()
    base_id = model_id.split("+finetuned:")[0]
    got = finetuned_id(base_id, model)
    if got != model_id:
        raise ModelLoadError(
            f"router {directory}: the encoder in {folder} ({got!r}) is not the one the router was fitted "
            f"with ({model_id!r}); restore it or refit the router with `cadre route fit`"
        )
    return wrap(model, model_id, form)
