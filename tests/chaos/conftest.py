"""Chaos tests reuse the integration stack and settings fixtures."""

from tests.integration.conftest import base_settings, settings, stack, stack_root

__all__ = ["base_settings", "settings", "stack", "stack_root"]
