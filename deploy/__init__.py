"""Deployment: the local stack launcher, Kafka runtime, Docker and Prometheus configuration."""
