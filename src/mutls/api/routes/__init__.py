"""One module per resource. Each exposes ``router``; ``mutls.api.app`` includes them all."""
