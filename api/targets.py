"""KPI targets per scope (kpis.md "Targets"): the targets file (read-only) plus targets set over the API.

    targets:                                            # SQM_KPI_TARGETS_FILE
      - {kpi: csat, scope: "tier:vip", target: 0.90}
      - {kpi: service_level, scope: "queue:*", target: 0.80}   # every queue without its own target
      - {kpi: first_response_mean_s, scope: all, target: 3600}

A target for `kind:*` is the default of every scope of that kind; a scope's own target wins. File
targets cannot be changed over the API (409), as provisioned rules and dashboards in Grafana.
Reads go to an in-memory snapshot (`Targets`), refreshed after every write and every 30 s by the
API, so that no request reads the database on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from db.schema import TargetRow
from stream.clock import utcnow
from stream.kpis import KPI_BY_NAME, LIVE_KPIS
from stream.scopes import SCOPE_KINDS, is_valid_scope, kind_of
from stream.view import StaffingConfig

Source = Literal["file", "api"]


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
        kind, _, name = v.partition(":")
        if is_valid_scope(v) or (name == "*" and kind in SCOPE_KINDS and kind != "all"):
            return v
        raise ValueError(f"not a scope: {v!r} (all, team:x, agent:x, channel:x, tier:x, queue:x, or team:* ...)")


class TargetFile(BaseModel):
    targets: list[Target] = []


DEFAULT_TARGETS_FILE = Path(__file__).with_name("default_targets.yaml")


def load_targets(path: str | None) -> dict[tuple[str, str], float]:
    """(scope, kpi) -> target of the targets file: None means the packaged defaults
    (api/default_targets.yaml), an empty path none; a bad file is an error."""
    if path is None:
        path = str(DEFAULT_TARGETS_FILE)
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {(t.scope, t.kpi): t.target for t in TargetFile.model_validate(data).targets}


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

    def all(self) -> list[tuple[Target, Source]]:
        out: list[tuple[Target, Source]] = [(Target(scope=s, kpi=k, target=v), "file")
                                            for (s, k), v in self.file.items()]
        out += [(Target(scope=s, kpi=k, target=v), "api") for (s, k), v in self.api.items()
                if (s, k) not in self.file]
        return sorted(out, key=lambda x: (x[0].scope, x[0].kpi))


class TargetRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class TargetBook:
    """Targets set over the API, in the database; `snapshot()` reads them all."""

    def __init__(self, engine: Engine, file: dict[tuple[str, str], float]) -> None:
        self.engine = engine
        self.file = file

    def snapshot(self) -> Targets:
        with Session(self.engine) as s:
            api = {(r.scope, r.kpi): r.target for r in s.scalars(select(TargetRow))}
        return Targets(dict(self.file), api)

    def put(self, t: Target, who: str | None) -> None:
        if (t.scope, t.kpi) in self.file:
            raise TargetRefused(409, f"{t.kpi} of {t.scope} is set in the targets file; change it there")
        with Session(self.engine) as s, s.begin():
            row = s.get(TargetRow, (t.scope, t.kpi))
            if row is None:
                s.add(TargetRow(scope=t.scope, kpi=t.kpi, target=t.target, updated_at=utcnow(), updated_by=who))
            else:
                row.target, row.updated_at, row.updated_by = t.target, utcnow(), who

    def delete(self, scope: str, kpi: str) -> None:
        if (scope, kpi) in self.file:
            raise TargetRefused(409, f"{kpi} of {scope} is set in the targets file; remove it there")
        with Session(self.engine) as s, s.begin():
            row = s.get(TargetRow, (scope, kpi))
            if row is None:
                raise TargetRefused(404, f"no target for {kpi} of {scope}")
            s.delete(row)
