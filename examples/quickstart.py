"""Start a training run from Python and wait for it: `python -m examples.quickstart`.

No worker needs starting by hand: start_run() launches one if none is running.
"""

import time
import uuid

from core import open_store
from jobs.tasks import start_run

store = open_store()
experiment_id = store.create_experiment({"name": f"quickstart {uuid.uuid4().hex[:6]}", "dataset": "data/sample/sentiment.csv"})
run_id = start_run(store, experiment_id, {"epochs": 3, "learning_rate": 0.01})
print(f"experiment {experiment_id}, run {run_id} queued")

while not (run := store.get_run(run_id)).status.is_terminal:
    time.sleep(0.5)

if run.status != "completed":
    raise SystemExit(f"run {run_id} {run.status.value}: {run.error or 'no error recorded'}")
print(f"run {run_id} completed: eval_accuracy {run.metrics['eval_accuracy'].last:.3f}, adapter v{run.adapter.version}")
