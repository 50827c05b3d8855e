"""Persistence: SQLAlchemy 2 models, the database handle, and Alembic migrations.

SQLite (WAL) is the embedded default; PostgreSQL is the scale-out store. Services open one
transaction per business operation through :class:`mutls.store.database.Database`.
"""
