"""The launcher's Kafka configuration: PLAINTEXT by default, SASL_SSL when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream.deploy.local.certificates import LocalPki
from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.kafka import KafkaCluster, KafkaNode
from fraudstream.deploy.local.kafka_security import SecureListener

VOTERS = "1@127.0.0.1:10092"


def node(tmp_path: Path) -> KafkaNode:
    return KafkaNode(1, "127.0.0.1", 9092, 10092, tmp_path / "data", tmp_path / "conf")


def lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_the_default_listener_is_plaintext_on_loopback(tmp_path: Path) -> None:
    props = lines(node(tmp_path).properties(VOTERS, 1, 1))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:10092"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert not [key for key in props if key.startswith(("ssl.", "sasl.", "listener.name."))]


def test_a_secure_listener_replaces_plaintext_with_sasl_ssl(tmp_path: Path) -> None:
    pki = LocalPki(tmp_path / "pki")
    secure = SecureListener(pki, plain_users=(("bob", "bob-pw"),),
                            scram_users=(("alice", "alice-pw"),), broker_password="broker-pw")
    props = lines(node(tmp_path).properties(VOTERS, 1, 1, secure))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:10092"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9092"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.plain.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
        'password="broker-pw" user_broker="broker-pw" user_bob="bob-pw";')
    assert props["ssl.keystore.location"] == str(pki.broker_keystore)
    assert props["ssl.truststore.location"] == str(pki.ca_file)
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    # SCRAM users live in the metadata log: written when the storage is formatted.
    assert secure.format_arguments() == ["--add-scram",
                                         "SCRAM-SHA-512=[name=alice,password=alice-pw]"]
    # The launcher's own readiness check logs in as the broker user.
    client = KafkaCluster(tmp_path, "127.0.0.1", 9092, 1, 256, secure).client_target
    assert not isinstance(client, str)
    assert (client.kafka_security_protocol, client.kafka_sasl_username,
            client.kafka_ssl_cafile) == ("SASL_SSL", "broker", str(pki.ca_file))
    assert KafkaCluster(tmp_path, "127.0.0.1", 9092, 1, 256).client_target == "127.0.0.1:9092"


@pytest.mark.parametrize("user", [("bob", 'pw"; user_x="y'), ("bad name", "pw"),
                                  ("eve", "a,b"), ("eve", "x]")])
def test_users_that_would_break_the_config_syntax_are_refused(tmp_path: Path,
                                                              user: tuple[str, str]) -> None:
    with pytest.raises(StackError, match="Kafka user"):
        SecureListener(LocalPki(tmp_path), plain_users=(user,))
