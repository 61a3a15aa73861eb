"""Bring history from other trackers into the store: `tunedeck import mlflow|tensorboard ...`.

Each source lists its runs as `SourceRun`s (cheap) and reads a run's metrics only when it is
imported; `runs.import_runs` puts them through the store's real lifecycle.
"""
