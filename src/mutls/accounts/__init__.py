"""Accounts (organisations), users, roles and API tokens."""
