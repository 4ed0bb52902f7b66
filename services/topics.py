"""Topic layout, creation and the partition check every process runs before it processes anything.

Every topic is created explicitly, with its configs spelled out: some brokers (the embedded one
among them) do not report `retention.ms` through DescribeConfigs, and Faust would otherwise create
topics with its own partition counts. Each topic gets SQM_TOPIC_REPLICATION_FACTOR replicas and
`min.insync.replicas`; the compacted ones roll a segment every SQM_COMPACTED_SEGMENT_MS, because
compaction never cleans the open segment and every start reads these topics from the beginning.

Why a partition count that differs is fatal, not a warning: partition p of the state topic holds
the state of partition p of each source topic (the worker folds source partition p into state
partition p, and reloads it from there when it gains p; bad events of p go to dead-letter
partition p), and a scope's records and alert state live on partition crc32(scope) % SQM_PARTITIONS
of the scope and alert-state topics, whose assignment decides which worker evaluates it. A topic
with another count sends records where no reader looks: KPIs silently missing, alerts that never
fire or fire twice. The alerts topic keeps its count so that an alert's transitions stay on one
partition, in order; the rules topic has one partition, read as one ordered log. Kafka cannot
remove partitions, and adding some moves keys to other partitions, so the check stops the process
with the fix instead of starting on skewed topics.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.config import Settings

log = logging.getLogger(__name__)
WEEK_MS = 7 * 86400 * 1000


class TopicLayoutError(RuntimeError):
    """Existing topics have partition counts sqm cannot run on; the message names them and the fix.
    Waiting does not heal it: callers that retry broker errors must let this one through."""


def topic_specs(settings: Settings) -> list[NewTopic]:
    p, rf = settings.partitions, settings.effective_replication_factor
    insync = {"min.insync.replicas": str(settings.effective_min_insync_replicas)}
    kept = {"cleanup.policy": "delete", "retention.ms": str(WEEK_MS), **insync}
    compacted = {"cleanup.policy": "compact", "segment.ms": str(settings.compacted_segment_ms), **insync}
    specs = [NewTopic(name, p, rf, topic_configs=dict(kept)) for name in settings.source_topics.values()]
    specs.append(NewTopic(settings.deadletter_topic, p, rf, topic_configs=dict(kept)))
    # The state topic is partitioned like the sources (partition p holds the state of source
    # partition p) and compacted: only the latest value per key matters.
    specs.append(NewTopic(settings.state_topic, p, rf, topic_configs=dict(compacted)))
    # Scope-partitioned copies of the KPI bucket and ticket records: what the alert engine reads
    # (alerts/evaluator.py). Compacted like the state.
    specs.append(NewTopic(settings.scopes_topic, p, rf, topic_configs=dict(compacted)))
    # The alert state of each (rule, scope), on the partition of its scope. The worker group assigns
    # its partitions, which decides who evaluates which scopes (alerts/runner.py).
    specs.append(NewTopic(settings.alert_state_topic, p, rf, topic_configs=dict(compacted)))
    # Alert transitions (key: alert id), read by the notifier; kept like the sources.
    specs.append(NewTopic(settings.alerts_topic, p, rf, topic_configs=dict(kept)))
    # The effective rule set (key: rule id), published by the API, read by every worker.
    specs.append(NewTopic(settings.rules_topic, 1, rf, topic_configs=dict(compacted)))
    return specs


def partition_mismatches(needed: Mapping[str, int], existing: Mapping[str, int]) -> list[str]:
    """One line per topic that exists with another partition count than `needed` says (topics
    that do not exist yet are not a mismatch: they are created with the right count)."""
    return [f"topic {name} has {existing[name]} partitions, sqm needs {want}"
            for name, want in needed.items() if name in existing and existing[name] != want]


def layout_error(settings: Settings, mismatches: list[str], existing: Mapping[str, int]) -> str:
    """The message of `TopicLayoutError`: what is wrong, why it matters, how to fix it."""
    shared = {existing[t.name] for t in topic_specs(settings) if t.name in existing and t.name != settings.rules_topic}
    hint = (f"set SQM_PARTITIONS={shared.pop()} (the count the existing topics share), or "
            if len(shared) == 1 and existing.get(settings.rules_topic, 1) == 1 else "")
    return (f"{'; '.join(mismatches)} (SQM_PARTITIONS={settings.partitions}, prefix {settings.topic_prefix!r}). "
            "Partition p of the state topic holds the state of partition p of every source topic, and scopes "
            "are routed to partition hash % SQM_PARTITIONS, so the counts must match exactly. Fix: "
            f"{hint}start on a new set of topics (a new SQM_TOPIC_PREFIX), or delete and recreate the topics "
            "named; Kafka cannot remove partitions, and adding some moves keys to other partitions "
            "(docs/deploy/kafka.md, \"Partition counts\")")


def check_partitions(settings: Settings, existing: Mapping[str, int]) -> None:
    needed = {t.name: t.num_partitions for t in topic_specs(settings)}
    mismatches = partition_mismatches(needed, existing)
    if mismatches:
        raise TopicLayoutError(layout_error(settings, mismatches, existing))


def partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each of `names` that exists (asked for by name: on a shared cluster the
    principal may not see, or want to list, every topic)."""
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names) if not t["error_code"]}


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Check the partition counts of the topics that exist (TopicLayoutError), then create the
    missing ones. Retries while the broker comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(**settings.kafka.kafka_python(), client_id="sqm-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        specs = topic_specs(settings)
        existing = partition_counts(admin, [t.name for t in specs])
        check_partitions(settings, existing)
        missing = [t for t in specs if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(missing)
            log.info("created topics %s (replication factor %d, min.insync.replicas %d)", [t.name for t in missing],
                     settings.effective_replication_factor, settings.effective_min_insync_replicas)
            # a process that won the race with another SQM_PARTITIONS created them with its count
            check_partitions(settings, partition_counts(admin, [t.name for t in missing]))
    finally:
        admin.close()
