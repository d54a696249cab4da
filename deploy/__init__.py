"""Deployment: Kubernetes and Compose files, Prometheus and Grafana configuration, and the tools that write them."""
