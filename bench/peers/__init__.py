"""TuneDeck beside MLflow and Aim on what users do: `python -m bench.peers` (see bench/peers/__main__.py)."""
