"""Bad input at every entry point: a clear error naming the problem, and the store exactly as before."""

import math
from pathlib import Path

import polars as pl
import pytest

from core import tracking
from core.aliases import parse_reference
from core.datasets import inspect_dataset
from core.errors import TuneDeckError
from core.presenters import parse_id, parse_run_ids
from core.runs import start_run
from core.sweeps import sweep_configs
from core.writer import MetricWriter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "data" / "sample" / "sentiment.csv")


def experiment(name="ok", dataset=SAMPLE, **extra):
    return lambda store, ids: store.create_experiment({"name": name, "dataset": dataset, **extra})


def config(**fields):
    return lambda store, ids: start_run(store, ids["experiment"], {"epochs": 1, **fields}, enqueue=lambda run_id: "job")


def point(step=1, **values):
    def log(store, ids):
        writer = MetricWriter(store, flush_seconds=0)
        writer.log(ids["run"], step, values)
        writer.close()

    return log


def batch(**columns):
    """Points handed to the store directly, past the SDK's own checks: the store checks them again."""

    def log(store, ids):
        row = {"run_id": ids["run"], "key": "loss", "step": 1, "value": 0.5, "wall_time": None, **columns}
        store.log_metrics(pl.DataFrame({name: [value] for name, value in row.items()}))

    return log


def dataset(ref):
    return lambda store, ids: inspect_dataset(ref, [ROOT])


BAD_INPUTS = {
    # experiments: create and rename
    "empty name": (experiment(name=""), "name"),
    "blank name": (experiment(name="   "), "name"),
    "10 kB name": (experiment(name="x" * 10_000), "at most 200 characters"),
    "name with a newline": (experiment(name="a\nb"), "control characters"),
    "name with a NUL byte": (experiment(name="a\x00b"), "control characters"),
    "name with a text-direction override": (experiment(name="run \u202e1v"), "text-direction overrides"),
    "name with a C1 control character": (experiment(name="a\x85b"), "control characters"),
    "name of zero-width spaces": (experiment(name="\u200b\u200b"), "name must have a visible character"),
    "name of a lone combining accent": (experiment(name="\u0301"), "name must have a visible character"),
    "number as name": (experiment(name=42), "name must be text"),
    "list as name": (experiment(name=["a"]), "name must be text"),
    "name taken": (experiment(name="baseline"), "already exists"),
    "unknown field": (experiment(colour="red"), "not a known setting"),
    "huge description": (experiment(description="d" * 6000), "at most 5,000 characters are allowed, and this one has 6,000"),
    "rename to empty": (lambda store, ids: store.rename_experiment(ids["experiment"], ""), "name"),
    "rename to unicode control": (
        lambda store, ids: store.rename_experiment(ids["experiment"], "\u0007bell"),
        "control characters",
    ),
    # dataset references
    "dataset path traversal": (experiment(dataset="../../etc/passwd"), "invalid experiment: dataset ../../etc/passwd is outside the folders"),
    "dataset absolute outside roots": (experiment(dataset="/etc/passwd"), "outside the folders"),
    "empty dataset": (experiment(dataset=""), "dataset"),
    "dataset preview traversal": (dataset("../../etc/passwd"), "outside the folders"),
    "dataset missing": (dataset(str(ROOT / "data" / "nowhere.csv")), "does not exist"),
    "dataset is a folder": (dataset(str(ROOT / "data" / "models")), "is a directory"),
    "dataset unknown format": (dataset(str(ROOT / "README.md")), "unsupported extension"),
    # training configs
    "negative learning rate": (config(learning_rate=-1), "more than 0"),
    "NaN learning rate": (config(learning_rate=math.nan), "learning_rate"),
    "infinite learning rate": (config(learning_rate=math.inf), "learning_rate"),
    "SQL as learning rate": (config(learning_rate="1e-3; DROP TABLE runs"), "valid number"),
    "rank 0": (config(lora_rank=0), "at least 1"),
    "huge rank": (config(lora_rank=10**9), "at most 1,024"),
    "dropout 1.5": (config(lora_dropout=1.5), "less than 1"),
    "batch size 0": (config(batch_size=0), "at least 1"),
    "negative seed": (config(seed=-1), "at least 0"),
    "script tag as target module": (config(target_modules=["<script>"]), "may only contain unaccented letters, digits and _ . -"),
    "unknown config key": (config(learnign_rate=0.1), "not a known setting"),
    "trainer path": (config(trainer="../../bin/sh"), "may only contain unaccented lower-case letters, digits and _ -"),
    "free-form command": (config(trainer="command", command="rm -rf /"), "may only contain unaccented letters, digits and _ . -"),
    "empty base model": (config(base_model=""), "base_model must not be empty"),
    # IDs and URL query parameters
    "run ID text": (lambda store, ids: parse_id("abc", "run"), "not a positive whole number"),
    "run ID SQL": (lambda store, ids: parse_id("1 OR 1=1", "run"), "not a positive whole number"),
    "run ID negative": (lambda store, ids: parse_id("-1", "run"), "not a positive whole number"),
    "run ID 30 digits": (lambda store, ids: parse_id("9" * 30, "run"), "is larger than any ID TuneDeck gives out"),
    "runs list too long": (lambda store, ids: parse_run_ids(",".join(map(str, range(1, 61)))), "at most 50"),
    "unknown run": (lambda store, ids: store.get_run(999_999), "no run with ID 999999"),
    "run ID as string": (lambda store, ids: store.get_run("1"), "positive whole number"),
    "sweep with words": (lambda store, ids: sweep_configs({}, "learning_rate = fast .. slow", "random"), "is not a number"),
    "sweep over a made-up setting": (lambda store, ids: sweep_configs({}, "rm -rf = 1", "grid"), "is not a setting"),
    "sweep of a million runs": (lambda store, ids: sweep_configs({}, "seed = 1 .. 9", "random", count=10**6), "1 to 50"),
    "alias with a space": (lambda store, ids: parse_reference("sentiment@prod uction"), "start with a letter"),
    "sort injection": (lambda store, ids: store.list_experiments(sort="name; DROP TABLE runs"), "cannot sort"),
    "sort as a list": (lambda store, ids: store.list_experiments(sort=["name"]), "cannot sort experiments by ['name']"),
    "status as a number": (lambda store, ids: store.list_experiments(status=1.5), "status must be a status or a list"),
    "name filter as a list": (lambda store, ids: store.list_experiments(name_contains=["x"]), "name_contains must be text"),
    "run filters as a number": (lambda store, ids: store.runs_table(ids["experiment"], where=1.5), "filters must be a list"),
    "run order as a list": (lambda store, ids: store.runs_table(ids["experiment"], order_by=["loss"]), "order_by must be"),
    # metric keys and values
    "NaN metric": (point(loss=math.nan), "only finite numbers"),
    "infinite metric": (point(loss=-math.inf), "only finite numbers"),
    "text metric": (point(loss="0.5"), "must be a number"),
    "empty metric key": (point(**{"": 1.0}), "is not allowed"),
    "SQL metric key": (point(**{"loss'); DROP TABLE metrics; --": 1.0}), "is not allowed"),
    "script metric key": (point(**{"<script>alert(1)</script>": 1.0}), "is not allowed"),
    "negative step": (point(step=-5, loss=1.0), "step must be a whole number"),
    "step past 2^63": (point(step=10**20, loss=1.0), "from 0 to 2^63 - 1"),
    "metrics for unknown run": (lambda store, ids: point(loss=1.0)(store, {"run": 987_654}), "unknown run ID 987654"),
    # points handed to the store directly
    "store: NaN value": (batch(value=math.nan), "only finite numbers"),
    "store: infinite value": (batch(value=math.inf), "only finite numbers"),
    "store: null value": (batch(value=None), "have no value"),
    "store: null key": (batch(key=None), "have no key"),
    "store: negative step": (batch(step=-3), "step must be a whole number from 0"),
    "store: fractional step": (batch(step=1.5), "step must be a whole number, got 1.5"),
    "store: text step": (batch(step="ten"), "step must be a whole number"),
    "store: step past 2^63": (batch(step=2**63), "step must be at most 2^63 - 1"),
    "store: float step past 2^63": (batch(step=1e20), "step must be at most 2^63 - 1"),
    "store: empty key": (batch(key=""), "is not allowed"),
    "store: 1 MB key": (batch(key="k" * 1_000_000), "(1000000 characters) is not allowed"),
    "store: key with a newline": (batch(key="loss\nx"), "is not allowed"),
    "store: run ID 0": (batch(run_id=0), "run ID must be a positive whole number"),
    "store: missing column": (lambda store, ids: store.log_metrics(pl.DataFrame({"run_id": [ids["run"]]})), "lack the column"),
    "store: unknown run": (batch(run_id=987_654), "unknown run ID 987654"),
    # the SDK
    "SDK experiment as float": (lambda store, ids: tracking.start_run(3.5, store=store), "experiment must be an ID or a name"),
    "SDK 10 kB experiment name": (lambda store, ids: tracking.start_run("x" * 10_000, store=store), "at most 200 characters"),
    "SDK attach to junk ID": (lambda store, ids: tracking.attach("abc", store=store), "positive whole number"),
    "SDK NaN param": (lambda store, ids: store.log_params(ids["run"], {"lr": math.nan}), "NaN"),
}


@pytest.fixture
def guarded(store, held):
    """The test's store as the app opens it: datasets confined to the repository."""
    held.dataset_roots = [ROOT]
    return store


def test_there_are_at_least_forty_bad_inputs():
    assert len(BAD_INPUTS) >= 40


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gets_a_clear_error_and_leaves_the_store_unchanged(guarded, unchanged, case):
    action, message = BAD_INPUTS[case]
    baseline = guarded.list_experiments().items[0]
    ids = {"experiment": baseline.id, "run": guarded.list_runs(baseline.id)[0].id}

    with pytest.raises(TuneDeckError) as caught:
        action(guarded, ids)

    assert message in str(caught.value), str(caught.value)
    assert "Traceback" not in str(caught.value)
    unchanged()
