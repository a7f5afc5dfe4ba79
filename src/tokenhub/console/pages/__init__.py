"""The console's page groups, one module per area (see ``console/core.py`` for the ``Pages`` base)."""
