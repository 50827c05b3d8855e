"""The admin API: FastAPI adapters over the services; ``create_app`` builds the application."""

from __future__ import annotations

from mutls.api.app import create_app

__all__ = ["create_app"]
