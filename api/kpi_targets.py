"""KPI targets per scope, as values (kpis.md "Targets"): what a target is, and the effective targets the
API reads (`Targets`: the targets file, then those set over the API). Pure: the file and the database
are api/targets.py's.

    t = Targets(file={("queue:*", "service_level"): 0.8}, api={("team:billing", "csat"): 0.9})
    t.get("queue:vip", "service_level")    # 0.8, the kind's default
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from stream.kpis import KPI_BY_NAME, LIVE_KPIS
from stream.scopes import is_scope_selector, kind_of
from stream.view import StaffingConfig

Source = Literal["file", "api"]


class KpiTarget(BaseModel):
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
        if is_scope_selector(v):
            return v
        raise ValueError(f"not a scope: {v!r} (all, team:x, agent:x, channel:x, tier:x, queue:x, or team:* ...)")


class TargetFile(BaseModel):
    targets: list[KpiTarget] = []



def staffing_config(targets: dict[tuple[str, str], float], *, default_handle_s: float,
                    thresholds: dict[str, float], default_threshold_s: float) -> StaffingConfig:
    """Erlang C's inputs besides the view: each queue's `service_level` target of the targets file
    (`queue:*` for the others, 80 % without one) and service-level threshold (the KPI workers')."""
    per_queue = {scope.removeprefix("queue:"): v for (scope, kpi), v in targets.items()
                 if kpi == "service_level" and scope.startswith("queue:") and scope != "queue:*"}
    return StaffingConfig(default_handle_s, dict(thresholds), default_threshold_s, per_queue,
                          targets.get(("queue:*", "service_level"), 0.80))


@dataclass
class Targets:
    """The effective targets: file targets, then API targets (a file target's key cannot be set)."""

    file: dict[tuple[str, str], float] = field(default_factory=dict)
    api: dict[tuple[str, str], float] = field(default_factory=dict)

    def get(self, scope: str, kpi: str) -> float | None:
        for key in ((scope, kpi), (f"{kind_of(scope)}:*", kpi)):
            for src in (self.file, self.api):
                if key in src:
                    return src[key]
        return None

    def all(self) -> list[tuple[KpiTarget, Source]]:
        out: list[tuple[KpiTarget, Source]] = [(KpiTarget(scope=s, kpi=k, target=v), "file")
                                            for (s, k), v in self.file.items()]
        out += [(KpiTarget(scope=s, kpi=k, target=v), "api") for (s, k), v in self.api.items()
                if (s, k) not in self.file]
        return sorted(out, key=lambda x: (x[0].scope, x[0].kpi))
