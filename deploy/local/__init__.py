"""The local stack: real Kafka, Redis, Prometheus and Alertmanager on loopback, without Docker."""

from deploy.local.errors import StackError
from deploy.local.stack import LocalStack, StackConfig

__all__ = ["LocalStack", "StackConfig", "StackError"]
