"""Kubernetes manifests (a kustomize base) and the generator of their monitoring resources."""
