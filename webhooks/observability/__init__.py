"""The web's health, readiness and Prometheus metrics (inbox and broker gauges)."""
