"""Expiry monitoring (issue 7): one inventory of everything with a notAfter, alerts when an item
crosses a threshold, and Prometheus gauges. See docs/expiry.md."""
