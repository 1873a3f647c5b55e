"""cadre.flywheel: put a specialist found in traffic into service, and take it out again.

``promote`` adds the specialist and its route to ``ecosystem.yaml`` (the router refitted with the task's
requests as the route's examples), validates the result, keeps a backup, and hot-reloads a running server
through its admin API; ``rollback`` restores the backup. Both append to the flywheel's action log.

    from cadre.flywheel import promote, rollback
    promote("ecosystem.yaml", name="invoices", base="smollm2-135m", adapter="runs/inv/adapter-f32.gguf",
            train_file="data/task0/train.jsonl", admin_url="http://127.0.0.1:8000")
"""

from __future__ import annotations

from cadre.flywheel.promotion import (
    PromoteResult,
    RollbackResult,
    ShadowEvidence,
    promote,
    rollback,
    shadow_evidence,
)

__all__ = ["PromoteResult", "RollbackResult", "ShadowEvidence", "promote", "rollback", "shadow_evidence"]
