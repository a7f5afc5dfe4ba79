"""Money movements: prices and costs, holds and settlements (the ledger), credits."""
