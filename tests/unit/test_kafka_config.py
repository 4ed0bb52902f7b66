"""Kafka connection settings -> options of aiokafka, kafka-python and Faust; topic specs; the partition check.

No broker: the TLS context is proven by a real handshake in memory against a server context that
requires a client certificate, with a CA and certificates made by openssl for this module.
"""

from __future__ import annotations

import ssl
import subprocess

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from pydantic import ValidationError

from edge.kafka import KAFKA_PYTHON_SLOW_STEP_S, MECHANISMS, KafkaClientConfig
from services.config import Settings
from services.topics import TopicLayoutError, check_partitions, partition_mismatches, topic_specs

SECRET = "correct-horse-battery"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for localhost signed by it, and a client certificate (EC keys: fast)."""
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sqm test CA")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for who, subject in (("server", "/CN=localhost"), ("client", "/CN=sqm")):
        run("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", subject)
        ext = ["-extfile", "server.ext"] if who == "server" else []
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{who}.pem", "-days", "2", *ext)
    return {name: str(d / name) for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake between the two contexts through memory buffers; raises ssl.SSLError on refusal."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, end, out, peer_in in (("c", c, c_out, s_in), ("s", s, s_out, c_in)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def server_context(pki: dict[str, str], require_client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca.pem"])
    return ctx


# -- the option mapping ------------------------------------------------------------------------

CASES = [("PLAINTEXT", None), ("SSL", None)] + [(p, m) for p in ("SASL_PLAINTEXT", "SASL_SSL") for m in MECHANISMS]


def config(protocol: str, mechanism: str | None, pki: dict[str, str]) -> KafkaClientConfig:
    sasl = {"sasl_mechanism": mechanism, "username": "sqm", "password": SECRET} if mechanism else {}
    tls = {"cafile": pki["ca.pem"]} if protocol in ("SSL", "SASL_SSL") else {}
    return KafkaClientConfig("k1:9093, k2:9093", protocol, **sasl, **tls)  # type: ignore[arg-type]


@pytest.mark.parametrize(("protocol", "mechanism"), CASES)
async def test_every_library_gets_the_same_connection(protocol: str, mechanism: str | None,
                                                      pki: dict[str, str]) -> None:
    kafka = config(protocol, mechanism, pki)
    tls = protocol.endswith("SSL")
    sasl = {"sasl_mechanism": mechanism, "sasl_plain_username": "sqm", "sasl_plain_password": SECRET} if mechanism \
        else {}
    expected = {"security_protocol": protocol, **({"ssl_context": kafka.ssl_context} if tls else {}), **sasl}
    assert kafka.aiokafka() == {"bootstrap_servers": "k1:9093, k2:9093", **expected}
    kp_opts = kafka.kafka_python()
    assert kp_opts.pop("kafka_client").keywords == {"slow_task_threshold_secs": KAFKA_PYTHON_SLOW_STEP_S}
    assert kp_opts == {"bootstrap_servers": ["k1:9093", "k2:9093"], **expected}
    assert isinstance(kafka.ssl_context, ssl.SSLContext) == tls
    # Faust: its own translation of our credentials gives aiokafka exactly the same options
    creds = kafka.faust_credentials()
    assert creds is None if protocol == "PLAINTEXT" else isinstance(
        creds, faust.SASLCredentials if mechanism else faust.SSLCredentials)
    faust_opts = credentials_to_aiokafka_auth(creds)
    assert {k: v for k, v in faust_opts.items() if v is not None} == expected
    assert kafka.faust_broker == "kafka://k1:9093;kafka://k2:9093"
    # the real constructors take them (aiokafka checks SSL contexts and SASL mechanisms here) ...
    producer, consumer = AIOKafkaProducer(**kafka.aiokafka()), AIOKafkaConsumer(**kafka.aiokafka())
    for client in (producer.client, consumer._client):
        assert (client._security_protocol, client._sasl_mechanism) == (protocol, mechanism or "PLAIN")
        assert client._ssl_context is kafka.ssl_context and client._sasl_plain_password == (SECRET if mechanism
                                                                                             else None)
    await producer.stop()
    await consumer.stop()
    # ... and kafka-python knows every option by name (its constructors connect at once)
    for kp in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(kafka.kafka_python()) <= set(kp.DEFAULT_CONFIG), kp


def test_the_password_is_never_shown(pki: dict[str, str]) -> None:
    kafka = config("SASL_SSL", "SCRAM-SHA-512", pki)
    assert SECRET not in repr(kafka) and SECRET not in str(kafka.faust_credentials())
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                 kafka_sasl_username="sqm", kafka_sasl_password=SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s) and s.kafka.password == SECRET
    with pytest.raises(ValidationError) as refused:  # a refused setting does not echo its input either
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password=SECRET)
    assert SECRET not in str(refused.value)


def test_file_paths_make_the_tls_context(pki: dict[str, str]) -> None:
    mutual = KafkaClientConfig("localhost:9093", "SSL", cafile=pki["ca.pem"], certfile=pki["client.pem"],
                               keyfile=pki["client.key"])
    ctx = mutual.ssl_context
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "sqm test CA"),),)]
    handshake(ctx, server_context(pki, require_client_cert=True), "localhost")  # our CA and client cert
    with pytest.raises(ssl.SSLError, match="mismatch|match"):  # the broker's name is checked ...
        handshake(ctx, server_context(pki, require_client_cert=True), "kafka.example")
    lax = KafkaClientConfig("kafka.example:9093", "SSL", cafile=pki["ca.pem"], check_hostname=False)
    assert lax.ssl_context is not None
    handshake(lax.ssl_context, server_context(pki, require_client_cert=False), "kafka.example")  # ... unless off
    with pytest.raises(ssl.SSLError):  # without the client certificate, a broker that wants one refuses
        handshake(lax.ssl_context, server_context(pki, require_client_cert=True), "kafka.example")
    with pytest.raises(ssl.SSLError, match="certificate verify failed"):  # the system CAs do not know ours
        handshake(KafkaClientConfig("localhost:9093", "SSL").ssl_context or ssl.create_default_context(),
                  server_context(pki, require_client_cert=False), "localhost")


def test_settings_build_the_client_config(pki: dict[str, str]) -> None:
    s = Settings(kafka_bootstrap_servers="b-1.msk.example:9096", kafka_security_protocol="SASL_SSL",
                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="sqm", kafka_sasl_password=SECRET,
                 kafka_ssl_cafile=pki["ca.pem"], kafka_ssl_check_hostname=False)
    assert s.kafka == KafkaClientConfig("b-1.msk.example:9096", "SASL_SSL", "SCRAM-SHA-512", "sqm", SECRET,
                                        cafile=pki["ca.pem"], check_hostname=False)
    assert Settings().kafka == KafkaClientConfig("127.0.0.1:9092")


REFUSED = [
    ({"kafka_security_protocol": "SASL_SSL"}, "SQM_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs SQM_KAFKA_SASL_MECHANISM, "
     "SQM_KAFKA_SASL_USERNAME, SQM_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u"},
     "needs SQM_KAFKA_SASL_PASSWORD"),
    ({"kafka_sasl_mechanism": "SCRAM-SHA-256"}, "SQM_KAFKA_SASL_MECHANISM set, but SQM_KAFKA_SECURITY_PROTOCOL="
     "PLAINTEXT does not authenticate"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u",
      "kafka_sasl_password": "p", "kafka_ssl_cafile": "/etc/hostname"}, "SQM_KAFKA_SSL_CAFILE set, but "
     "SQM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "CLIENT"}, "mutual TLS needs both"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "KEY"}, "mutual TLS needs both"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/no/such/ca.pem"},
     "SQM_KAFKA_SSL_CAFILE=/no/such/ca.pem: no such file"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", "kafka_sasl_username": "u",
      "kafka_sasl_password": "p"}, "kafka_sasl_mechanism"),
    ({"topic_min_insync_replicas": 2}, "min.insync.replicas 2 exceeds the replication factor 1"),
    ({"kafka_bootstrap_servers": "k:9092", "topic_min_insync_replicas": 4}, "exceeds the replication factor 3"),
    ({"topic_replication_factor": 0}, "topic_replication_factor"),
]


@pytest.mark.parametrize(("kwargs", "message"), REFUSED)
def test_combinations_that_cannot_work_are_refused(kwargs: dict[str, object], message: str,
                                                   pki: dict[str, str]) -> None:
    kwargs = {k: pki["client.pem"] if v == "CLIENT" else pki["client.key"] if v == "KEY" else v
              for k, v in kwargs.items()}
    with pytest.raises(ValidationError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_the_client_config_refuses_what_no_client_can_use() -> None:
    with pytest.raises(ValueError, match="security protocol 'TLS'"):
        KafkaClientConfig("k:9093", "TLS")
    with pytest.raises(ValueError, match="SASL mechanism 'GSSAPI'"):
        KafkaClientConfig("k:9093", "SASL_SSL", "GSSAPI", "u", "p")
    with pytest.raises(ValueError, match="needs a username and a password"):
        KafkaClientConfig("k:9093", "SASL_SSL", "PLAIN", "u")


# -- topics ---------------------------------------------------------------------------------------

COMPACTED = {"state", "scopes", "alert-state", "rules"}


@pytest.mark.parametrize(("kwargs", "rf", "insync"), [
    ({}, 1, 1),  # loopback, PLAINTEXT: the embedded broker
    ({"kafka_bootstrap_servers": "k1:9092,k2:9092"}, 3, 2),
    ({"kafka_bootstrap_servers": "127.0.0.1:9096", "kafka_security_protocol": "SASL_PLAINTEXT",
      "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u", "kafka_sasl_password": "p"}, 3, 2),  # a tunnel
    ({"kafka_bootstrap_servers": "k1:9092", "topic_replication_factor": 1}, 1, 1),
    ({"kafka_bootstrap_servers": "k1:9092", "topic_replication_factor": 5, "topic_min_insync_replicas": 3}, 5, 3),
])
def test_topic_specs(kwargs: dict[str, object], rf: int, insync: int) -> None:
    s = Settings(topic_prefix="cc.", partitions=8, compacted_segment_ms=600_000, **kwargs)  # type: ignore[arg-type]
    specs = {t.name.removeprefix("cc."): t for t in topic_specs(s)}
    assert set(specs) == {"tickets", "calls", "surveys", "agents", "deadletter", "state", "scopes", "alert-state",
                          "alerts", "rules"}
    for kind, t in specs.items():
        assert t.replication_factor == rf and t.topic_configs["min.insync.replicas"] == str(insync)
        assert t.num_partitions == (1 if kind == "rules" else 8)
        if kind in COMPACTED:
            assert t.topic_configs["cleanup.policy"] == "compact" and t.topic_configs["segment.ms"] == "600000"
        else:
            assert t.topic_configs["cleanup.policy"] == "delete" and "segment.ms" not in t.topic_configs
    assert Settings().compacted_segment_ms == 3_600_000


def test_partition_mismatches_name_each_topic() -> None:
    needed = {"a": 6, "b": 6, "rules": 1}
    assert partition_mismatches(needed, {}) == []  # nothing exists yet: everything is created right
    assert partition_mismatches(needed, {"a": 6, "rules": 1, "other": 3}) == []
    assert partition_mismatches(needed, {"a": 6, "b": 12, "rules": 2}) == [
        "topic b has 12 partitions, sqm needs 6", "topic rules has 2 partitions, sqm needs 1"]


def test_the_partition_check_says_what_to_do() -> None:
    s = Settings(topic_prefix="cc.", partitions=6)
    check_partitions(s, {"cc.state": 6, "cc.rules": 1, "cc.tickets": 6})
    with pytest.raises(TopicLayoutError) as err:
        check_partitions(s, {"cc.tickets": 3, "cc.calls": 3, "cc.state": 3, "cc.rules": 1})
    text = str(err.value)
    assert text.startswith("topic cc.tickets has 3 partitions, sqm needs 6; topic cc.calls has 3 partitions, sqm "
                           "needs 6; topic cc.state has 3 partitions, sqm needs 6 (SQM_PARTITIONS=6, prefix 'cc.')")
    assert "set SQM_PARTITIONS=3 (the count the existing topics share)" in text
    assert "a new SQM_TOPIC_PREFIX" in text and "cannot remove partitions" in text
    with pytest.raises(TopicLayoutError) as err:  # no single count to move to: no SQM_PARTITIONS hint
        check_partitions(s, {"cc.tickets": 6, "cc.state": 12, "cc.rules": 3})
    assert "cc.rules has 3 partitions, sqm needs 1" in str(err.value) and "set SQM_PARTITIONS" not in str(err.value)
