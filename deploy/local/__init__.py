"""The local stack: real Kafka, Redis, Prometheus and Alertmanager on loopback, without Docker."""

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.stack import LocalStack, StackConfig

__all__ = ["LocalStack", "StackConfig", "StackError"]
