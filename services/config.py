"""Settings (pydantic-settings), built once at process start and passed in; nothing reads env elsewhere.

    >>> Settings(topic_prefix="demo.").topic("tickets")
    'demo.tickets'
"""

from __future__ import annotations

import ipaddress
import json
import socket
from functools import cached_property
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.caps import DEFAULT_CAPS
from stream.folds import KpiConfig


class Settings(BaseSettings):
    """Every setting of every process. Each field's description is its documentation: the table in
    docs/configuration.md is generated from them (`python -m services.docgen`)."""

    model_config = SettingsConfigDict(env_prefix="SQM_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SQM_KAFKA_BOOTSTRAP_SERVERS"),
        description="the Kafka cluster every component uses, comma-separated host:port")
    embedded_broker: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: start the embedded broker when the bootstrap address is on loopback and nothing "
        "listens there; on; off")
    topic_prefix: str = Field("sqm.", description="prefix of every topic")
    partitions: int = Field(6, ge=1, le=256, description="partitions of the topics sqm creates (the three input "
                            "topics must have the same count)")
    database_url: str = Field("sqlite:///var/sqm.db", description="SQLAlchemy URL of rules, alerts, history, "
                              "silences and the outbox; postgresql://... in production")
    api_host: str = Field("127.0.0.1", description="where the API and board listen")
    api_port: int = Field(8000, description="port of the API and board")
    demo: bool = Field(False, description="produce demo traffic (`make run` sets 1; 0: only what producers send)")
    demo_rate: float = Field(6.0, gt=0, description="demo arrivals per second at the daily peak")
    ingest_token: str | None = Field(None, description="bearer token of POST /v1/events (at least 16 characters); "
                                     "API keys with the ingest or admin role work beside it")
    admin_token: str | None = Field(None, description="bearer token of rule, target, acknowledgement and silence "
                                    "writes (at least 16 characters); API keys with the admin role work beside it")
    read_auth: Literal["open", "key"] = Field("open", description="open: reads (API, board, live updates) need no "
                                              "key; key: a read key or better (a token, or an API key)")
    api_allowed_hosts: str | None = Field(
        None, description="Host header values the API answers, comma-separated (`sqm.example.com,*.example.com`; `*`: "
        "any); other hosts get 400. Unset: `localhost,127.0.0.1,[::1]` when SQM_API_HOST is a loopback address; "
        "required when it is not (the API refuses to start without it)")
    api_write_rate: float = Field(20.0, ge=0, description="writes (POST, PUT, PATCH, DELETE) a second per API key or "
                                  "token, or per client address without one; over it: 429 with Retry-After; 0: no "
                                  "limit")
    api_write_burst: int = Field(100, ge=1, description="writes a client may send at once before "
                                 "SQM_API_WRITE_RATE applies")

    # KPI counting rules (kpis.md): first-response targets per tier, service level per queue
    fr_targets: dict[str, float] = Field({"vip": 1800.0}, description="first-response target per customer tier, "
                                         "seconds (JSON map)")
    fr_default_target: float = Field(14400.0, description="first-response target of the other tiers, seconds")
    sl_thresholds: dict[str, float] = Field({}, description="service-level answer threshold per queue, seconds "
                                            "(JSON map)")
    sl_default_threshold: float = Field(20.0, description="service-level threshold of the other queues, seconds")
    short_abandon: dict[str, float] = Field({}, description="short-abandon cut-off per queue, seconds (JSON map)")
    short_abandon_default: float = Field(5.0, description="short-abandon cut-off of the other queues, seconds")
    call_horizon_s: float = Field(4 * 3600.0, gt=0, description="a call offered longer ago and never answered "
                                  "or abandoned leaves the live state (calls_waiting), seconds")
    kpi_targets_file: str | None = Field(None, description="YAML file of KPI targets per scope; unset: none")
    scope_caps: dict[str, int] = Field({}, description="distinct values kept per dimension and source partition, "
                                       "beyond which events count under <kind>:other (JSON map over team, queue, "
                                       "channel, tier, agent; unset kinds keep their defaults: "
                                       f"{json.dumps(DEFAULT_CAPS)})")

    @field_validator("scope_caps")
    @classmethod
    def _caps(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = set(v) - set(DEFAULT_CAPS)
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}; caps apply to {', '.join(DEFAULT_CAPS)}")
        if any(n < 1 for n in v.values()):
            raise ValueError("each cap must be at least 1")
        return v

    @property
    def effective_scope_caps(self) -> dict[str, int]:
        return {**DEFAULT_CAPS, **self.scope_caps}

    # alerts (alerts.md)
    rules_file: str | None = Field(None, description="YAML rule file; unset: the packaged default rules; empty: "
                                   "no file rules")
    notify_file: str | None = Field(None, description="YAML targets and routes; unset: every alert to "
                                    "var/alerts.log")
    alert_tick_s: float = Field(0.5, gt=0, description="re-check pending and firing alerts this often")
    alert_full_eval_s: float = Field(10.0, gt=0, description="re-evaluate every rule and scope this often")
    alert_coalesce_s: float = Field(0.1, gt=0, description="scopes touched by new KPI records are evaluated "
                                    "within this delay (a busy scope at most this often)")
    delivery_lease_s: float = Field(30.0, gt=0, description="a claimed delivery is retried by anyone after this")
    delivery_backoff_max_s: float = Field(60.0, gt=0, description="longest wait between two delivery attempts")
    delivery_timeout_s: float = Field(5.0, gt=0, description="timeout of one delivery request, seconds")
    alert_retention_days: float = Field(90.0, ge=8, description="resolved alerts, their history and delivered "
                                        "notifications are deleted this long after they ended (at least 8 "
                                        "days: longer than the alerts topic keeps transitions)")
    public_url: str | None = Field(None, description="base URL of the API in links of notifications "
                                   "(generatorURL, ack link); default http://<api_host>:<api_port>")

    # KPI history (kpis.md "History and comparison")
    history_minute_days: float = Field(7.0, gt=0, description="KPI history is kept per minute this long (plus a "
                                       "day, so that last-week comparisons stay minute-exact), then per hour")
    history_days: float = Field(400.0, gt=1, description="KPI history is deleted after this many days")

    # stream tuning
    bucket_s: int = Field(60, ge=1, le=60, description="KPI bucket size, seconds (the windows' boundary error)")
    ticket_horizon_s: float = Field(7 * 86400, description="open tickets created longer ago leave the live state")
    batch_max: int = Field(2000, ge=1, description="largest worker micro-batch, events")
    batch_within_s: float = Field(0.2, gt=0, description="longest wait to fill a micro-batch, seconds")
    worker_role: Literal["all", "kpis", "alerts"] = Field(
        "all", description="all: KPIs and alert evaluation in one process; kpis / alerts: one of the two, so "
        "that alert evaluation runs beside the KPI fold instead of taking its CPU (docs/operations.md)")
    group_id: str | None = Field(None, description="consumer group of the workers; default <prefix>worker, "
                                 "<prefix>alerts for the alerts role")
    worker_id: str = Field(default_factory=lambda: socket.gethostname(),
                           description="worker name in heartbeats and metrics; default: the host name")
    metrics_agent_scopes: bool = Field(False, description="per-agent series in /metrics (one series per agent "
                                       "and KPI: mind the cardinality)")
    uvloop: bool = Field(True, description="run the worker on uvloop")
    fetch_max_wait_ms: int = Field(100, ge=0, le=5000, description="consumer long-poll wait; Faust's own 1500 ms "
                                   "adds up to 1.5 s of latency on brokers that hold a fetch (stream/transport.py)")
    rebalance_timeout_s: float | None = Field(None, description="Faust broker_rebalance_timeout; default 5 s on "
                                              "a loopback broker (the embedded one waits it out on every join), "
                                              "else 60 s")


    @field_validator("ingest_token", "admin_token")
    @classmethod
    def _no_placeholder(cls, v: str | None) -> str | None:
        if v is not None and (len(v) < 16 or v.lower() in {"changeme", "changethis", "secret", "token"}):
            raise ValueError("a token must be a real secret of at least 16 characters")
        return v

    @field_validator("api_allowed_hosts")
    @classmethod
    def _host_patterns(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for host in (h.strip() for h in v.split(",")):
            if not host or (host != "*" and "*" in host and (not host.startswith("*.") or "*" in host[1:])):
                raise ValueError(f"{host!r} is not a host name or pattern: use names, `*.example.com` or `*`")
        return v

    @property
    def api_is_loopback(self) -> bool:
        return _is_loopback(self.api_host.strip("[]"))

    @property
    def trusted_hosts(self) -> list[str]:
        """The Host header values the API answers (`["*"]`: any). Raises ValueError when the API listens
        beyond loopback and SQM_API_ALLOWED_HOSTS is unset: which names clients use cannot be guessed."""
        if self.api_allowed_hosts is not None:  # an IPv6 literal is compared with its brackets
            return [f"[{h}]" if ":" in h and not h.startswith("[") else h
                    for h in (h.strip() for h in self.api_allowed_hosts.split(","))]
        if self.api_is_loopback:
            return ["localhost", "127.0.0.1", "[::1]"]
        raise ValueError(f"SQM_API_HOST={self.api_host} listens beyond loopback: set SQM_API_ALLOWED_HOSTS to the "
                         "host names clients use (e.g. sqm.example.com,10.0.0.5), or to * to answer any Host "
                         "header (behind a proxy that checks it)")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def source_topics(self) -> dict[str, str]:
        """topic kind -> topic name"""
        return {k: self.topic(k) for k in ("tickets", "calls", "surveys")}

    @property
    def state_topic(self) -> str:
        return self.topic("state")

    @property
    def scopes_topic(self) -> str:
        return self.topic("scopes")

    @property
    def alert_state_topic(self) -> str:
        return self.topic("alert-state")

    @property
    def alerts_topic(self) -> str:
        return self.topic("alerts")

    @property
    def rules_topic(self) -> str:
        return self.topic("rules")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    @cached_property
    def kpi_config(self) -> KpiConfig:
        return KpiConfig(dict(self.fr_targets), self.fr_default_target, dict(self.sl_thresholds),
                         self.sl_default_threshold, dict(self.short_abandon), self.short_abandon_default,
                         self.call_horizon_s, self.effective_scope_caps)

    @property
    def bootstrap_is_loopback(self) -> bool:
        return all(_is_loopback(h) for h in self.bootstrap_hosts())

    def bootstrap_hosts(self) -> list[str]:
        return [s.strip().rsplit(":", 1)[0].strip("[]") for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def effective_rebalance_timeout(self) -> float:
        # A short timeout only matters for brokers that wait it out on join (the embedded one);
        # production Kafka keeps the Faust default.
        if self.rebalance_timeout_s is not None:
            return self.rebalance_timeout_s
        return 5.0 if self.bootstrap_is_loopback else 60.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
