"""Topic layout and creation: every topic is created explicitly, with its configs spelled out.

Explicit configs matter: some brokers (the embedded one among them) do not report `retention.ms`
through DescribeConfigs, and Faust would otherwise create topics with its own partition counts.
"""

from __future__ import annotations

import contextlib
import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.config import Settings

log = logging.getLogger(__name__)
WEEK_MS = 7 * 86400 * 1000


def topic_specs(settings: Settings) -> list[NewTopic]:
    p = settings.partitions
    src = {"cleanup.policy": "delete", "retention.ms": str(WEEK_MS)}
    specs = [NewTopic(name, p, 1, topic_configs=dict(src)) for name in settings.source_topics.values()]
    specs.append(NewTopic(settings.deadletter_topic, p, 1, topic_configs=dict(src)))
    # The state topic is partitioned like the sources (partition p holds the state of source
    # partition p) and compacted: only the latest value per key matters.
    specs.append(NewTopic(settings.state_topic, p, 1, topic_configs={"cleanup.policy": "compact"}))
    # Scope-partitioned copies of the KPI bucket and ticket records: what the alert engine reads
    # (alerts/evaluator.py). Compacted like the state.
    specs.append(NewTopic(settings.scopes_topic, p, 1, topic_configs={"cleanup.policy": "compact"}))
    # The alert state of each (rule, scope), on the partition of its scope. The worker group assigns
    # its partitions, which decides who evaluates which scopes (alerts/runner.py).
    specs.append(NewTopic(settings.alert_state_topic, p, 1, topic_configs={"cleanup.policy": "compact"}))
    # Alert transitions (key: alert id), read by the notifier; kept like the sources.
    specs.append(NewTopic(settings.alerts_topic, p, 1, topic_configs=dict(src)))
    # The effective rule set (key: rule id), published by the API, read by every worker.
    specs.append(NewTopic(settings.rules_topic, 1, 1, topic_configs={"cleanup.policy": "compact"}))
    return specs


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create missing topics; existing ones are left alone. Retries while the broker comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="sqm-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topic_specs(settings) if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        admin.close()
