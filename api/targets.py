"""KPI targets per scope (kpis.md "Targets"), loaded from a YAML file. Pure apart from reading it.

    targets:
      - {kpi: csat, scope: "tier:vip", target: 0.90}
      - {kpi: first_response_mean_s, scope: all, target: 3600}
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, Field, field_validator

from stream.kpis import KPI_BY_NAME, LIVE_KPIS
from stream.scopes import is_valid_scope


class Target(BaseModel):
    kpi: str
    scope: str = "all"
    target: float = Field(allow_inf_nan=False)

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, v: str) -> str:
        if v not in KPI_BY_NAME and v not in LIVE_KPIS:
            raise ValueError(f"unknown KPI {v!r}")
        return v

    @field_validator("scope")
    @classmethod
    def _valid_scope(cls, v: str) -> str:
        if not is_valid_scope(v):
            raise ValueError(f"not a scope: {v!r} (all, team:x, agent:x, channel:x, tier:x, queue:x)")
        return v


Targets = dict[tuple[str, str], float]  # (scope, kpi) -> target


class TargetFile(BaseModel):
    targets: list[Target] = []


def load_targets(path: str | None) -> Targets:
    """(scope, kpi) -> target. A missing path means no targets; a bad file is an error at start."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {(t.scope, t.kpi): t.target for t in TargetFile.model_validate(data).targets}
