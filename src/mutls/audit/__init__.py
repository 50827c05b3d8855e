"""The tamper-evident audit log: hash-chained rows written in the same transaction as the change."""
