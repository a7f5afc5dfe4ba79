"""Upstream providers: a registry of vendors (data) and one module per wire protocol."""
