"""The operators' JSON API under /api/admin (the console and the CLI share its services)."""
