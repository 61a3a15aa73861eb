"""Trainers a run can name in its config; each exposes train(config, dataset, output_dir, log, ...)."""
