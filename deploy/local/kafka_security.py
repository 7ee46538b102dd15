"""A SASL_SSL client listener for the local KRaft broker: PLAIN and SCRAM-SHA-512 over TLS.

The default local stack stays PLAINTEXT on loopback; this option exists so that the clients'
security settings (FRAUDSTREAM_KAFKA_*) are exercised against a real broker that refuses
anything else. The controller listener stays PLAINTEXT on loopback (it only carries the
quorum's own traffic); brokers talk to each other over the secured listener as ``broker_user``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fraudstream.deploy.local.certificates import LocalPki
from fraudstream.deploy.local.errors import StackError

if TYPE_CHECKING:
    from fraudstream.settings import Settings

LISTENER = "SASL_SSL"
SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecureListener:
    """Users and certificates of a SASL_SSL listener (PLAIN users in the broker's JAAS
    configuration, SCRAM users written into the metadata log when storage is formatted)."""

    pki: LocalPki
    #: (name, password) pairs accepted with SASL/PLAIN.
    plain_users: tuple[tuple[str, str], ...] = ()
    #: (name, password) pairs accepted with SASL/SCRAM-SHA-512.
    scram_users: tuple[tuple[str, str], ...] = ()
    #: The identity brokers use towards each other (and the launcher's readiness check).
    broker_user: str = "broker"
    broker_password: str = field(default="broker-password-local", repr=False)

    def __post_init__(self) -> None:
        for name, password in (*self.plain_users, *self.scram_users,
                               (self.broker_user, self.broker_password)):
            # They go into a JAAS line and StorageTool's [name=..,password=..] syntax.
            if not name.isidentifier() or any(c in password for c in '"\\,[]= '):
                raise StackError(f"Kafka user {name!r}: use letters, digits and _ for the "
                                 "name and no quotes, backslashes, commas, brackets, = or "
                                 "spaces in the password")

    def properties(self, host: str, broker_port: int, controller_port: int) -> list[str]:
        """The listener lines of a node's server.properties."""
        users = " ".join(f'user_{name}="{password}"' for name, password in
                         ((self.broker_user, self.broker_password), *self.plain_users))
        return [
            f"listeners={LISTENER}://{host}:{broker_port},CONTROLLER://{host}:{controller_port}",
            f"advertised.listeners={LISTENER}://{host}:{broker_port}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={LISTENER}:{LISTENER},CONTROLLER:PLAINTEXT",
            f"inter.broker.listener.name={LISTENER}",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            f"sasl.enabled.mechanisms=PLAIN,{SCRAM_MECHANISM}",
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{self.broker_user}" password="{self.broker_password}" {users};',
            f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.pki.broker_keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.pki.ca_file}",
        ]

    def format_arguments(self) -> list[str]:
        """StorageTool ``format`` arguments that create the SCRAM users (KRaft keeps SCRAM
        credentials in the metadata log, so they exist before the broker first starts)."""
        args: list[str] = []
        for name, password in self.scram_users:
            args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return args

    def client_settings(self, bootstrap: str) -> Settings:
        """Client settings of the broker user (PLAIN): what the launcher's checks connect with."""
        from fraudstream.settings import Settings

        return Settings(bootstrap_servers=bootstrap, kafka_security_protocol=LISTENER,
                        kafka_sasl_mechanism="PLAIN", kafka_sasl_username=self.broker_user,
                        kafka_sasl_password=self.broker_password,
                        kafka_ssl_cafile=str(self.pki.ca_file))
