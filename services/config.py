"""Settings (pydantic-settings), built once at process start and passed in; nothing reads env elsewhere.

    >>> Settings(topic_prefix="demo.").topic("tickets")
    'demo.tickets'
"""

from __future__ import annotations

import ipaddress
import json
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.kafka import KafkaClientConfig
from stream.caps import DEFAULT_CAPS
from stream.events import TYPES_BY_TOPIC, AgentStateName
from stream.folds import KpiConfig
from stream.view import StaffingConfig
from stream.voice import Analyser, default_analyser, load_scorer

AGENTS_ALL = 1_000_000  # SQM_METRICS_AGENT_SCOPES=true: every agent


class Settings(BaseSettings):
    """Every setting of every process. Each field's description is its documentation: the table in
    docs/configuration.md is generated from them (`python -m services.docgen`)."""

    # hide_input_in_errors: a refused setting's message names the setting; the input it echoes
    # otherwise would print SQM_KAFKA_SASL_PASSWORD or a token into the logs
    model_config = SettingsConfigDict(env_prefix="SQM_", frozen=True, extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SQM_KAFKA_BOOTSTRAP_SERVERS"),
        description="the Kafka cluster every component uses, comma-separated host:port")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every Kafka client (workers, API, notifier, history writer, producers, topic "
        "admin) connects: PLAINTEXT; SSL (TLS; with a client certificate: mutual TLS); SASL_PLAINTEXT; SASL_SSL "
        "(SASL over TLS, what managed Kafka offers). Examples: [deploy/kafka.md](deploy/kafka.md)")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism; required with SASL_PLAINTEXT and SASL_SSL, refused with the others")
    kafka_sasl_username: str | None = Field(None, description="SASL user name (the principal the ACLs name)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password; never logged or shown")
    kafka_ssl_cafile: str | None = Field(None, description="PEM file of the CAs that sign the brokers' certificates "
                                         "(SSL, SASL_SSL); unset: the system's CAs")
    kafka_ssl_certfile: str | None = Field(None, description="PEM client certificate for mutual TLS (with "
                                           "SQM_KAFKA_SSL_KEYFILE)")
    kafka_ssl_keyfile: str | None = Field(None, description="PEM private key of SQM_KAFKA_SSL_CERTFILE (unencrypted)")
    kafka_ssl_check_hostname: bool = Field(True, description="check that a broker's certificate names the host "
                                           "connected to (the certificate chain is verified either way)")
    embedded_broker: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: start the embedded broker when the bootstrap address is on loopback and nothing "
        "listens there; on; off")
    topic_prefix: str = Field("sqm.", description="prefix of every topic")
    partitions: int = Field(6, ge=1, le=256, description="partitions of the topics sqm creates; topics that exist "
                            "must have this many (the rules topic: 1), or every process refuses to start")
    topic_replication_factor: int | None = Field(
        None, ge=1, description="replicas of each topic sqm creates; unset: 1 when the bootstrap address is on "
        "loopback and PLAINTEXT (the embedded broker), else 3")
    topic_min_insync_replicas: int | None = Field(
        None, ge=1, description="`min.insync.replicas` of each topic sqm creates (every write waits for all in-sync "
        "replicas, acks=all, and fails when fewer than this are in sync); unset: 1 where the replication factor "
        "defaults to 1, else 2 (at most the replication factor)")
    compacted_segment_ms: int = Field(
        3_600_000, ge=60_000, description="`segment.ms` of the compacted topics (state, scopes, alert-state, "
        "rules): compaction never cleans the open segment, so this bounds the superseded records a starting "
        "worker, API or history writer reads back (Kafka's default is 7 days); 1 h: an hour of writes at most")
    database_url: str = Field("sqlite:///var/sqm.db", description="SQLAlchemy URL of rules, alerts, history, "
                              "silences and the outbox; postgresql://... in production")
    api_host: str = Field("127.0.0.1", description="where the API and board listen")
    api_port: int = Field(8000, description="port of the API and board")
    demo: bool = Field(False, description="produce demo traffic (`make run` sets 1; 0: only what producers send)")
    demo_rate: float = Field(1.0, gt=0, description="demo contacts (calls and tickets) per second at the daily "
                             "peak; the demo's agents are rostered for it")
    ingest_token: str | None = Field(None, description="bearer token of POST /v1/events (at least 16 characters); "
                                     "API keys with the ingest or admin role work beside it")
    admin_token: str | None = Field(None, description="bearer token of rule, target, acknowledgement and silence "
                                    "writes (at least 16 characters); API keys with the admin role work beside it")
    session_secret: str | None = Field(None, description="signs the board's sign-in cookies (at least 16 "
                                       "characters; every API replica needs the same). Unset: a random one per "
                                       "process, so that a restart signs every board out")
    session_days: float = Field(90.0, gt=0, description="how long a board stays signed in without being opened "
                                "again (each page load renews it)")
    read_auth: Literal["open", "key"] = Field("open", description="open: reads (API, board, live updates) need no "
                                              "key; key: a read key or better (a token, or an API key). Required "
                                              "when SQM_API_HOST is not a loopback address (the API refuses to "
                                              "start without it)")
    api_allowed_hosts: str | None = Field(
        None, description="Host header values the API answers, comma-separated (`sqm.example.com,*.example.com`; `*`: "
        "any); other hosts get 400. Unset: `localhost,127.0.0.1,[::1]` when SQM_API_HOST is a loopback address; "
        "required when it is not (the API refuses to start without it)")
    api_trusted_proxies: str = Field("127.0.0.1", description="addresses (comma-separated, or *) of the reverse "
                                     "proxies whose X-Forwarded-For and X-Forwarded-Proto the API believes: the "
                                     "client address the limits count, and https for the board cookie's Secure flag")
    api_write_rate: float = Field(20.0, ge=0, description="writes (POST, PUT, PATCH, DELETE) a second per API key or "
                                  "token, or per client address without one; over it: 429 with Retry-After; 0: no "
                                  "limit")
    api_write_burst: int = Field(100, ge=1, description="writes a client may send at once before "
                                 "SQM_API_WRITE_RATE applies")
    api_read_rate: float = Field(50.0, ge=0, description="reads (GET, HEAD) a second per API key or token, or per "
                                 "client address without one (probes and the board's static files are not "
                                 "counted); over it: 429 with Retry-After; 0: no limit")
    api_read_burst: int = Field(200, ge=1, description="reads a client may send at once before SQM_API_READ_RATE "
                                "applies")
    api_streams_per_client: int = Field(20, ge=1, description="board streams (Server-Sent Events) open at once per "
                                        "client address without a key; beyond: 429 with Retry-After")
    api_streams_per_key: int = Field(500, ge=1, description="board streams open at once per API key or token (the wall "
                                     "screens that share one read key); beyond: 429 with Retry-After")

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
    max_live_tickets: int = Field(500_000, ge=1000, description="open tickets kept per source partition (the "
                                  "ticket list, FRT and overdue counts); beyond, the oldest are dropped and counted in "
                                  "sqm_live_state_evicted_total")
    max_live_calls: int = Field(100_000, ge=1000, description="waiting or talking calls kept per source partition; "
                                "beyond, the oldest are dropped and counted in sqm_live_state_evicted_total")
    default_handle_s: float = Field(300.0, gt=0, description="Erlang C's handle time of a queue with no call.ended "
                                    "in the last hour, seconds (workforce.md)")
    agent_state_map: dict[str, AgentStateName] = Field({}, description="vendor agent state names and the "
                                                       "contract's state each counts as (JSON map, e.g. "
                                                       '{"Not Ready": "away", "ACW": "after_contact_work"})')
    voice_scorer: str = Field("lexicon", description="the survey comments' sentiment scorer: `lexicon` (sqm's "
                              "own, English and Chinese, docs/voice.md) or `module:callable` returning a scorer "
                              "shipped in an installed package (it must not download anything)")
    kpi_targets_file: str | None = Field(None, description="YAML file of KPI targets per scope; unset: the packaged "
                                         "default targets (api/default_targets.yaml); empty: no file targets")
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

    # alerts (docs/api.md "Rules", "Delivery")
    rules_file: str | None = Field(None, description="YAML rule file; unset: the packaged default rules; empty: "
                                   "no file rules")
    notify_file: str | None = Field(None, description="YAML targets and routes; unset: every alert to "
                                    "var/alerts.log")
    alert_tick_s: float = Field(0.5, gt=0, description="re-check pending and firing alerts this often")
    alert_full_eval_s: float = Field(10.0, gt=0, description="re-evaluate every rule and scope this often")
    alert_census_s: float = Field(60.0, gt=0, description="send the census of the alerts each scope partition "
                                  "holds this often (and after each load): the notifier ends the others")
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
    forecast_every_s: float = Field(60.0, gt=0, le=300, description="the API remakes the forecasts of the next "
                                    "two hours this often (docs/workforce.md \"Forecast\")")

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
    metrics_agent_scopes: int = Field(100, ge=0, description="per-agent series in /metrics for this many agents "
                                      "at most, the busiest of the last 24 h (about 240 series per agent: mind "
                                      "the cardinality); 0: none, `true`: every agent. Set it on the workers too "
                                      "(0 there: they keep no per-agent `sqm_kpi_*_total` counters)")
    uvloop: bool = Field(True, description="run the worker on uvloop")
    fetch_max_wait_ms: int = Field(100, ge=0, le=5000, description="consumer long-poll wait; Faust's own 1500 ms "
                                   "adds up to 1.5 s of latency on brokers that hold a fetch (edge/transport.py)")
    rebalance_timeout_s: float | None = Field(None, description="Faust broker_rebalance_timeout; default 5 s on "
                                              "a loopback broker (the embedded one waits it out on every join), "
                                              "else 60 s")
    health_port: int | None = Field(
        None, ge=1, le=65535, description="port of the health probes of the workers, the notifier and the history "
        "writer, on every address: GET /livez (200 while the process's event loop runs; 503 once it has "
        "stalled for 30 s) and GET /readyz (200 once a worker holds its partitions with their state loaded, "
        "the notifier and history writer their database; 503 with the reason otherwise; never from lag). "
        "Unset: no probe server. The API has its own, on SQM_API_PORT "
        "([deploy/kubernetes.md](deploy/kubernetes.md#probes))")


    @field_validator("metrics_agent_scopes", mode="before")
    @classmethod
    def _agent_scopes_flag(cls, v: object) -> object:
        """The earlier on/off setting still reads: `true` is every agent, `false` none."""
        if isinstance(v, bool):
            return AGENTS_ALL if v else 0
        if isinstance(v, str) and v.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
            return AGENTS_ALL if v.strip().lower() in ("true", "yes", "on") else 0
        return v

    @field_validator("ingest_token", "admin_token", "session_secret")
    @classmethod
    def _no_placeholder(cls, v: str | None) -> str | None:
        if v is not None and (len(v) < 16 or v.lower() in {"changeme", "changethis", "secret", "token"}):
            raise ValueError("a token must be a real secret of at least 16 characters")
        return v

    @model_validator(mode="after")
    def _kafka_combinations(self) -> Settings:
        problems = kafka_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

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

    def check_read_auth(self) -> None:
        """Raises ValueError when the API listens beyond loopback and SQM_READ_AUTH was not set: open reads
        there show ticket ids, agent names and customer comments to whoever reaches the API."""
        if not self.api_is_loopback and "read_auth" not in self.model_fields_set:
            raise ValueError(f"SQM_API_HOST={self.api_host} listens beyond loopback: set SQM_READ_AUTH=key (reads "
                             "need a read key; python -m services.keys create NAME --role read) or, to let anyone "
                             "who reaches the API read ticket ids, agent names and comments, SQM_READ_AUTH=open")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def source_topics(self) -> dict[str, str]:
        """topic kind -> topic name"""
        return {k: self.topic(k) for k in TYPES_BY_TOPIC}

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
    def staffing_config(self) -> StaffingConfig:
        """Erlang C's inputs besides the view: the targets file's service-level targets per queue,
        the KPI workers' thresholds, the default handle time."""
        from api.targets import load_targets, staffing_config  # the API's reading of the targets file

        return staffing_config(load_targets(self.kpi_targets_file), default_handle_s=self.default_handle_s,
                               thresholds=dict(self.sl_thresholds), default_threshold_s=self.sl_default_threshold)

    @cached_property
    def analyser(self) -> Analyser:
        """The comments' reader: the lexicon's topics, the configured scorer's sentiment."""
        scorer = load_scorer(self.voice_scorer)
        return default_analyser() if scorer is None else Analyser(scorer)

    @cached_property
    def kpi_config(self) -> KpiConfig:
        return KpiConfig(dict(self.fr_targets), self.fr_default_target, dict(self.sl_thresholds),
                         self.sl_default_threshold, dict(self.short_abandon), self.short_abandon_default,
                         self.call_horizon_s, self.effective_scope_caps, agent_totals=self.metrics_agent_scopes > 0,
                         agent_state_map=dict(self.agent_state_map), max_live_tickets=self.max_live_tickets,
                         max_live_calls=self.max_live_calls)

    @property
    def bootstrap_is_loopback(self) -> bool:
        return all(_is_loopback(h) for h in self.bootstrap_hosts())

    def bootstrap_hosts(self) -> list[str]:
        return [s.strip().rsplit(":", 1)[0].strip("[]") for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def kafka(self) -> KafkaClientConfig:
        """How every Kafka client connects (edge/kafka.py turns it into each library's options)."""
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password is not None else None
        return KafkaClientConfig(self.kafka_bootstrap_servers, self.kafka_security_protocol,
                                 self.kafka_sasl_mechanism, self.kafka_sasl_username, password,
                                 self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile,
                                 self.kafka_ssl_check_hostname)

    @property
    def kafka_is_local(self) -> bool:
        """A single local broker (the embedded one, a laptop's): loopback and unsecured. A secured
        loopback address is a tunnel to a real cluster."""
        return self.bootstrap_is_loopback and self.kafka_security_protocol == "PLAINTEXT"

    @property
    def effective_replication_factor(self) -> int:
        # One broker cannot hold three replicas; a cluster that loses a broker must not lose a partition.
        if self.topic_replication_factor is not None:
            return self.topic_replication_factor
        return 1 if self.kafka_is_local else 3

    @property
    def effective_min_insync_replicas(self) -> int:
        # 2 of 3: a write is on two brokers before it is acknowledged, and one broker may be down
        # (a rolling restart) without stopping the writes.
        if self.topic_min_insync_replicas is not None:
            return self.topic_min_insync_replicas
        return min(1 if self.kafka_is_local else 2, self.effective_replication_factor)

    @property
    def effective_rebalance_timeout(self) -> float:
        # A short timeout only matters for brokers that wait it out on join (the embedded one);
        # production Kafka keeps the Faust default.
        if self.rebalance_timeout_s is not None:
            return self.rebalance_timeout_s
        return 5.0 if self.bootstrap_is_loopback else 60.0


def kafka_problems(s: Settings) -> list[str]:
    """What is wrong with the Kafka connection and topic settings taken together, each with the fix."""
    out = []
    protocol = f"SQM_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol}"
    sasl = {"SQM_KAFKA_SASL_MECHANISM": s.kafka_sasl_mechanism, "SQM_KAFKA_SASL_USERNAME": s.kafka_sasl_username,
            "SQM_KAFKA_SASL_PASSWORD": s.kafka_sasl_password}
    if s.kafka_security_protocol.startswith("SASL_"):
        if missing := [name for name, v in sasl.items() if not v]:
            out.append(f"{protocol} needs {', '.join(missing)} (mechanisms: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
    elif given := [name for name, v in sasl.items() if v]:
        out.append(f"{', '.join(given)} set, but {protocol} does not authenticate: use SASL_SSL (or "
                   "SASL_PLAINTEXT), or unset them")
    files = {"SQM_KAFKA_SSL_CAFILE": s.kafka_ssl_cafile, "SQM_KAFKA_SSL_CERTFILE": s.kafka_ssl_certfile,
             "SQM_KAFKA_SSL_KEYFILE": s.kafka_ssl_keyfile}
    if s.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        if given := [name for name, v in files.items() if v]:
            out.append(f"{', '.join(given)} set, but {protocol} does not use TLS: use SSL or SASL_SSL, or unset them")
    else:
        if bool(s.kafka_ssl_certfile) != bool(s.kafka_ssl_keyfile):
            out.append("mutual TLS needs both SQM_KAFKA_SSL_CERTFILE and SQM_KAFKA_SSL_KEYFILE (a PEM file that holds "
                       "both: give it as both)")
        out += [f"{name}={path}: no such file" for name, path in files.items() if path and not Path(path).is_file()]
    if s.effective_min_insync_replicas > s.effective_replication_factor:
        out.append(f"min.insync.replicas {s.effective_min_insync_replicas} exceeds the replication factor "
                   f"{s.effective_replication_factor}: every write would fail (set SQM_TOPIC_MIN_INSYNC_REPLICAS at "
                   "most SQM_TOPIC_REPLICATION_FACTOR)")
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
