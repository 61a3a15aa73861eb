"""TuneDeck beside MLflow and Aim on one workload: `python -m bench.peers` (see bench/peers/__main__.py)."""
