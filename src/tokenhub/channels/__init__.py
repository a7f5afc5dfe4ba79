"""Upstream channels: a provider, a base URL and an (encrypted) upstream key."""
