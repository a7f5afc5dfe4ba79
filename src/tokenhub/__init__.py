"""TokenHub: one OpenAI-compatible base URL and one key for every model, billed exactly."""

__version__ = "0.1.0"
