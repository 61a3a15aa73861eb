"""The `tunedeck` command: the app, a worker, imports from other trackers, and a health check."""
