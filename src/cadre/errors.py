"""Typed exceptions. Every message says what was wrong and how to fix it.

CadreError
 ├── ConfigError          a spec (YAML, flags) is invalid; names the key path
 ├── NotFoundError        an unknown model, hardware, adapter, corpus or file
 ├── DataError            a dataset is malformed (file and line number) or unusable
 ├── ModelLoadError       a model or adapter file is missing, corrupt or incompatible
 ├── BackendError         a backend failed at run time (unreachable endpoint, bad response)
 │    ├── ContextLengthError   the prompt does not fit the model's context
 │    └── RequestRejectedError the endpoint refused the request as invalid (HTTP 400/422)
 ├── CapacityError        a workload does not fit (memory, queue)
 ├── PipelineError        a pipeline run failed on its input (schema, unparsable answer, a tool raising)
 └── StoreError           a vector store / index problem (e.g. another embedding model)
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

__all__ = [
    "BackendError",
    "CadreError",
    "CapacityError",
    "ConfigError",
    "ContextLengthError",
    "DataError",
    "ModelLoadError",
    "NotFoundError",
    "PipelineError",
    "RequestRejectedError",
    "StoreError",
    "did_you_mean",
]


class CadreError(Exception):
    """Base of every error cadre raises on purpose; the CLI prints its message as one line."""


class ConfigError(CadreError, ValueError):
    """A spec is invalid."""


class NotFoundError(CadreError, LookupError):
    """A named thing does not exist."""


class DataError(CadreError, ValueError):
    """A dataset is malformed or unusable."""


class ModelLoadError(CadreError):
    """A model or adapter cannot be loaded."""


class BackendError(CadreError):
    """A model backend failed while serving a request."""


class ContextLengthError(BackendError, ValueError):
    """A prompt is longer than the model's context window."""


class RequestRejectedError(BackendError, ValueError):
    """A model endpoint refused a request as invalid (HTTP 400/422): the caller's to fix, not a backend failure."""


class CapacityError(CadreError):
    """A workload does not fit the resources given."""


class PipelineError(CadreError, ValueError):
    """A pipeline run failed: its input, a step's answer or a tool was wrong (the message names the step)."""


class StoreError(CadreError):
    """A retrieval store cannot serve the request."""


def did_you_mean(name: str, choices: Iterable[str], *, kind: str) -> NotFoundError:
    """Build a NotFoundError for an unknown ``name`` that lists the close matches among ``choices``."""
    options = sorted(set(choices))
    close = get_close_matches(name, options, n=4, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(options[:20])}"
    return NotFoundError(f"unknown {kind} {name!r}; {hint}")
