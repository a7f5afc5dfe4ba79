"""The web console: server-rendered pages (Jinja2) served by the gateway process at ``/``."""
