"""The public HTTP API under /api/v1."""
