"""A dataset in parentheses is a label, not a file: it names where an experiment's runs came from."""

SCRIPT_DATASET = "(logged from a script)"  # runs a training script logged through the SDK, into an experiment of its own


def imported_from(source: str) -> str:
    """The label of an experiment whose runs an importer read, e.g. "(imported from MLflow)"."""
    return f"(imported from {source})"


def is_label(ref: str) -> bool:
    """There is no file to train on: the built-in trainers cannot run there."""
    return ref.startswith("(") and ref.endswith(")")
