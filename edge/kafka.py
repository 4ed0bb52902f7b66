"""How every Kafka client connects: one frozen value, turned into each client library's options.

`services.config.Settings.kafka` builds it from the SQM_KAFKA_* settings (which validate the
combinations and name the settings in their errors); every component takes it instead of a bare
bootstrap string, so that TLS and SASL reach every client, and each library gets the same
meaning from one place:

    kafka = KafkaClientConfig("broker:9093", "SASL_SSL", "SCRAM-SHA-512", "sqm", "s3cret", cafile="ca.pem")
    AIOKafkaConsumer(**kafka.aiokafka(), group_id=None)    # aiokafka
    KafkaProducer(**kafka.kafka_python(), acks="all")      # kafka-python
    faust.App(..., broker=kafka.faust_broker, broker_credentials=kafka.faust_credentials())

TLS is one `ssl.SSLContext` built here from the file paths (CA bundle, client certificate and key)
and handed to every library: aiokafka and Faust accept nothing else, and kafka-python then uses
it as it is, so the three cannot verify differently.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# kafka-python (3.x) warns "Task ... ran for 0.120s ... blocking the event loop" when one step of
# its IO thread takes longer than 0.1 s. That clock also runs while the thread waits for the GIL,
# which a process producing events in its main thread (the demo, replay, loadgen) holds for most
# of the time on a loaded machine: every such warning was contention, not the tight loop the check
# is meant to catch. A second still catches one.
KAFKA_PYTHON_SLOW_STEP_S = 1.0
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaClientConfig:
    """Where the cluster is and how to authenticate to it. The password is left out of `repr`."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.security_protocol not in PROTOCOLS:
            raise ValueError(f"security protocol {self.security_protocol!r}: use one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise ValueError(f"SASL mechanism {self.sasl_mechanism!r}: use one of {', '.join(MECHANISMS)}")
            if not self.username or self.password is None:
                raise ValueError(f"{self.security_protocol} needs a username and a password")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The context of every TLS connection (None without TLS): the system's CAs, or `cafile`
        alone when given; the client certificate for mutual TLS; the broker's host name checked
        unless `check_hostname` is off (the chain is verified either way)."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        ctx.check_hostname = self.check_hostname
        return ctx

    def _sasl_options(self) -> dict[str, Any]:
        if not self.sasl:
            return {}
        return {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.username,
                "sasl_plain_password": self.password}

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of `AIOKafkaProducer`, `AIOKafkaConsumer` and `AIOKafkaAdminClient`."""
        out: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context
        return out | self._sasl_options()

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's `KafkaProducer`, `KafkaConsumer` and `KafkaAdminClient`."""
        from kafka.net.compat import KafkaNetClient  # here: the pure modules that import this one need no kafka

        client = partial(KafkaNetClient, slow_task_threshold_secs=KAFKA_PYTHON_SLOW_STEP_S)
        out: dict[str, Any] = {"bootstrap_servers": self.servers, "security_protocol": self.security_protocol,
                               "kafka_client": client}
        if self.tls:
            out["ssl_context"] = self.ssl_context
        return out | self._sasl_options()

    @property
    def faust_broker(self) -> str:
        """Faust's `broker` setting: `kafka://host:port` per server, `;`-separated."""
        return ";".join(f"kafka://{s}" for s in self.servers)

    def faust_credentials(self) -> CredentialsT | None:
        """Faust's `broker_credentials`. Faust hands them to aiokafka unchanged
        (`faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth`, faust-streaming 0.15.3):
        `SASLCredentials` carries any mechanism name aiokafka knows (PLAIN, SCRAM-SHA-256,
        SCRAM-SHA-512) and turns into SASL_SSL when it has an SSL context, else SASL_PLAINTEXT;
        `SSLCredentials` is TLS alone (with a client certificate: mutual TLS)."""
        import faust  # here, not at the top: only the worker runs Faust, and it is slow to import

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         mechanism=self.sasl_mechanism, ssl_context=self.ssl_context)
        if self.tls:
            return faust.SSLCredentials(self.ssl_context)
        return None
