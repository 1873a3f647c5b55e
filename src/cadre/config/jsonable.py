"""Plain JSON values from cadre's result objects (dataclasses, pydantic models, paths, numpy scalars)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, pydantic models, paths, numpy scalars and non-finite floats for JSON."""
    if isinstance(obj, BaseModel):
        return to_jsonable(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return to_jsonable(obj.item())
    return obj
