"""Kafka security settings: validated once, rendered for aiokafka, kafka-python and Faust alike."""

from __future__ import annotations

import dataclasses
import inspect
import ssl
from pathlib import Path
from typing import Any

import pytest

from fraudstream import kafka_clients
from fraudstream.deploy.local.certificates import LocalPki, make_local_pki
from fraudstream.settings import Settings, SettingsError

SECURITY_KEYS = {"security_protocol", "sasl_mechanism", "sasl_plain_username",
                 "sasl_plain_password", "ssl_context"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_local_pki(tmp_path_factory.mktemp("pki"))


def sasl_ssl(pki: LocalPki, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bootstrap_servers": "k1:9093,k2:9093", "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "alice",
        "kafka_sasl_password": "pw", "kafka_ssl_cafile": str(pki.ca_file), **overrides}
    return Settings(**values)


def ca_subjects(context: ssl.SSLContext) -> list[str]:
    subjects = []
    for cert in context.get_ca_certs():
        names: Any = cert["subject"]
        subjects.append(dict(part[0] for part in names)["commonName"])
    return subjects


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "message"), [
    ({"kafka_security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL is 'TLS'; use one of"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "scram"},
     "KAFKA_SASL_MECHANISM is 'scram'"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "alice"},
     "SASL_SSL needs FRAUDSTREAM_KAFKA_SASL_USERNAME and FRAUDSTREAM_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "needs FRAUDSTREAM_KAFKA_SASL_USERNAME"),
    ({"kafka_sasl_username": "alice", "kafka_sasl_password": "pw"},
     "FRAUDSTREAM_KAFKA_SASL_USERNAME and FRAUDSTREAM_KAFKA_SASL_PASSWORD set but "
     "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT sends no credentials"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "a",
      "kafka_sasl_password": "b", "kafka_ssl_cafile": "/ca.pem"},
     "FRAUDSTREAM_KAFKA_SSL_CAFILE set but FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT "
     "does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"},
     "FRAUDSTREAM_KAFKA_SSL_KEYFILE needs FRAUDSTREAM_KAFKA_SSL_CERTFILE"),
])
def test_contradictory_security_settings_are_refused(values: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**values)


def test_the_kafka_password_is_hidden_but_may_be_short() -> None:
    # The cluster's administrator chose it: unlike our own secrets, no length rule applies.
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="alice",
                        kafka_sasl_password="hunter2")
    assert "hunter2" not in repr(settings)
    assert "kafka_sasl_password='***'" in repr(settings)


def test_security_settings_come_from_the_environment_and_reach_worker_processes(
        pki: LocalPki) -> None:
    from fraudstream.workers.pool import settings_env

    settings = Settings.from_env({
        "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_KAFKA_SASL_USERNAME": "alice", "FRAUDSTREAM_KAFKA_SASL_PASSWORD": "pw",
        "FRAUDSTREAM_KAFKA_SSL_CAFILE": str(pki.ca_file),
        "FRAUDSTREAM_KAFKA_SSL_CHECK_HOSTNAME": "false"})
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username, settings.kafka_sasl_password,
            settings.kafka_ssl_cafile, settings.kafka_ssl_check_hostname) == (
        "SASL_SSL", "SCRAM-SHA-512", "alice", "pw", str(pki.ca_file), False)
    # Workers are child processes configured through their environment.
    assert Settings.from_env(settings_env(settings)) == dataclasses.replace(
        settings, bootstrap_servers=settings.kafka_bootstrap)


# --- aiokafka and kafka-python ---------------------------------------------------------------

def test_plaintext_adds_nothing_to_the_bootstrap_servers() -> None:
    assert kafka_clients.connection_options(Settings(bootstrap_servers="k:1")) == {
        "bootstrap_servers": "k:1"}


def test_sasl_ssl_gives_both_libraries_the_login_and_a_verifying_tls_context(
        pki: LocalPki) -> None:
    settings = sasl_ssl(pki)
    for options in (kafka_clients.aio_options(settings), kafka_clients.sync_options(settings)):
        context = options.pop("ssl_context")
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert ca_subjects(context) == ["fraudstream-local-ca"]
        assert {k: v for k, v in options.items() if k in SECURITY_KEYS} == {
            "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "alice", "sasl_plain_password": "pw"}


def test_every_option_is_one_the_client_classes_accept(pki: LocalPki) -> None:
    import aiokafka
    import kafka

    aio = set(kafka_clients.aio_options(sasl_ssl(pki)))
    sync = set(kafka_clients.sync_options(sasl_ssl(pki)))
    assert aio >= SECURITY_KEYS and sync >= SECURITY_KEYS
    for cls in (aiokafka.AIOKafkaConsumer, aiokafka.AIOKafkaProducer):
        assert aio <= set(inspect.signature(cls).parameters), cls
    for sync_cls in (kafka.KafkaAdminClient, kafka.KafkaConsumer, kafka.KafkaProducer):
        assert sync <= set(sync_cls.DEFAULT_CONFIG), sync_cls


def test_sasl_plaintext_sends_the_login_without_tls() -> None:
    options = kafka_clients.connection_options(Settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="bob",
        kafka_sasl_password="pw"))
    assert options == {"bootstrap_servers": "127.0.0.1:9092",
                       "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                       "sasl_plain_username": "bob", "sasl_plain_password": "pw"}


def test_ssl_with_a_client_certificate_and_no_hostname_check(pki: LocalPki) -> None:
    cert, key = pki.client_identity("worker")
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca_file),
                        kafka_ssl_certfile=str(cert), kafka_ssl_keyfile=str(key),
                        kafka_ssl_check_hostname=False)
    options = kafka_clients.connection_options(settings)
    assert set(options) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    assert options["ssl_context"].check_hostname is False
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the CA is still checked


def test_a_key_that_does_not_match_its_certificate_is_a_settings_error(pki: LocalPki) -> None:
    cert, _key = pki.client_identity("worker")
    _other_cert, other_key = pki.client_identity("intruder")
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=str(cert),
                        kafka_ssl_keyfile=str(other_key))
    with pytest.raises(SettingsError, match="not usable PEM"):
        kafka_clients.connection_options(settings)


@pytest.mark.parametrize("name", ["cafile", "certfile", "keyfile"])
def test_a_missing_tls_file_is_named_with_its_variable(pki: LocalPki, tmp_path: Path,
                                                       name: str) -> None:
    cert, key = pki.client_identity("worker")
    files: dict[str, Any] = {"cafile": str(pki.ca_file), "certfile": str(cert),
                             "keyfile": str(key), name: str(tmp_path / "gone.pem")}
    settings = Settings(kafka_security_protocol="SSL",
                        **{f"kafka_ssl_{k}": v for k, v in files.items()})
    with pytest.raises(SettingsError,
                       match=f"FRAUDSTREAM_KAFKA_SSL_{name.upper()}=.*gone.pem: no such file"):
        kafka_clients.aio_options(settings)
    with pytest.raises(SettingsError, match="no such file"):
        kafka_clients.faust_broker_settings(settings)


def test_a_call_site_cannot_replace_a_security_option(pki: LocalPki) -> None:
    with pytest.raises(TypeError, match="security_protocol"):
        kafka_clients.aio_options(sasl_ssl(pki), security_protocol="PLAINTEXT")


# --- Faust -----------------------------------------------------------------------------------

def faust_auth(settings: Settings) -> dict[str, Any]:
    """What Faust hands each of its aiokafka clients for these settings."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    broker = kafka_clients.faust_broker_settings(settings)
    return dict(credentials_to_aiokafka_auth(broker.get("broker_credentials")))


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT", "SSL", "PLAINTEXT"])
def test_faust_clients_get_the_same_options_as_ours(pki: LocalPki, protocol: str) -> None:
    values: dict[str, Any] = {"kafka_security_protocol": protocol}
    if protocol.startswith("SASL"):
        values |= {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "alice",
                   "kafka_sasl_password": "pw"}
    if protocol.endswith("SSL"):
        values["kafka_ssl_cafile"] = str(pki.ca_file)
    settings = Settings(**values)
    ours = kafka_clients.aio_options(settings)
    theirs = faust_auth(settings)
    for options in (ours, theirs):
        context = options.pop("ssl_context", None)
        if protocol.endswith("SSL"):
            assert isinstance(context, ssl.SSLContext)
            assert ca_subjects(context) == ["fraudstream-local-ca"]
        else:
            assert context is None
    assert theirs == {k: v for k, v in ours.items() if k in SECURITY_KEYS} | (
        {"security_protocol": "PLAINTEXT"} if protocol == "PLAINTEXT" else {})


def test_faust_gets_no_credentials_on_plaintext() -> None:
    assert kafka_clients.faust_broker_settings(Settings(bootstrap_servers="a:1,b:2")) == {
        "broker": ["kafka://a:1", "kafka://b:2"]}


def test_no_probe_without_security_settings() -> None:
    # Nothing to diagnose: the command's "cannot reach Kafka" is the whole story.
    assert kafka_clients.connection_problem("127.0.0.1:1") is None
    assert kafka_clients.connection_problem(Settings(bootstrap_servers="127.0.0.1:1")) is None


# --- the worker's first Kafka call -----------------------------------------------------------

def test_a_worker_treats_security_refusals_as_configuration_errors(tmp_path: Path) -> None:
    from aiokafka.errors import KafkaConnectionError

    from fraudstream.commands.worker_cmd import _refused_by_kafka

    def missing_ca(settings: Settings) -> None:
        kafka_clients.connection_options(settings)

    settings = Settings(kafka_security_protocol="SSL",
                        kafka_ssl_cafile=str(tmp_path / "ca.pem"))
    assert _refused_by_kafka(settings, missing_ca) == (
        f"FRAUDSTREAM_KAFKA_SSL_CAFILE={tmp_path / 'ca.pem'}: no such file")
    assert _refused_by_kafka(settings, lambda s: None) is None

    def down(settings: Settings) -> None:
        raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:1")

    # Kafka down (nothing about security to report) stays an error the supervisor retries.
    with pytest.raises(KafkaConnectionError):
        _refused_by_kafka(Settings(bootstrap_servers="127.0.0.1:1"), down)
