"""Test support: real servers in background threads, and a gateway harness."""
