"""The systems compared, by name, imported only when used (MLflow and Aim take seconds to import)."""

import importlib

MODULES = {"TuneDeck": "bench.peers.tunedeck", "MLflow": "bench.peers.mlflow_peer", "Aim": "bench.peers.aim_peer"}
BULK = "TuneDeck bulk"  # TuneDeck's `log_series` path: shown beside the user's path, never instead of it


def load(name: str):
    return importlib.import_module(MODULES[name])
