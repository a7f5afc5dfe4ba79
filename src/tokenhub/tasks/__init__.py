"""Asynchronous media jobs (video): validation, creation with a hold, polling, settlement, callbacks."""
