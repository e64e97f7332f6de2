"""What operators see of a running deployment: Prometheus metrics, structured logs, readiness."""
