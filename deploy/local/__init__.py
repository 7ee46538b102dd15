"""The local stack: real Kafka, Redis, Prometheus and Alertmanager on loopback, without Docker."""

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.stack import LocalStack, StackConfig, stack_from_settings

__all__ = ["LocalStack", "StackConfig", "StackError", "stack_from_settings"]
