"""Limits per key and per account: request and token rates, requests in flight, and spend per period.

* ``policy``: what a limit is, how it is stored and validated (one rule for CLI, admin API, console).
* ``rates``: requests per minute, tokens per minute and concurrency, in this process's memory.
* ``redis_rates``: the same counters in Redis, so several processes share them.
* Spend per day / week / month / in total is money: the ledger enforces it inside the transaction
  that admits each hold (``billing/ledger.py``), so it is exact across processes without Redis.
"""
