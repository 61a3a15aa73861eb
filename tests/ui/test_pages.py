"""Every page, through Streamlit's AppTest: renders, links resolve, forms work, bad input is friendly."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from streamlit.testing.v1 import AppTest

from core import tracking
from core.charts import PALETTE
from core.divergence import find_diverged
from core.writer import MetricWriter
from jobs import reaper
from tests.apptest import as_shown
from tests.ui.conftest import ROOT, SAMPLE
from ui.common import fitting_width

PAGES = [
    "pages/experiments.py",
    "pages/experiment.py",
    "pages/runs.py",
    "pages/run.py",
    "pages/compare.py",
    "pages/adapters.py",
    "pages/jobs.py",
]


def texts(app) -> str:
    """Every text on the page, as the browser shows it."""
    parts = [e.value for e in app.title] + [e.value for e in app.markdown] + [e.value for e in app.caption]
    parts += (
        [e.value for e in app.info]
        + [e.value for e in app.error]
        + [e.value for e in app.warning]
        + [e.value for e in app.success]
    )
    return "\n".join(as_shown(str(part)) for part in parts)


def in_page_order(app) -> list[str]:
    """Each message, metric tile and fold of the page, top to bottom, as 'kind: text'."""
    found = []

    def walk(node) -> None:
        if node.type in ("success", "info", "warning", "error"):
            found.append(f"{node.type}: {as_shown(node.value)}")
        elif node.type in ("expandable", "expander"):
            found.append(f"fold: {as_shown(node.label)}")
        elif node.type == "metric":
            found.append(f"metric: {node.label}")
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(app.main)
    return found


def table_with(app, column: str):
    """The first table on the page that has this column."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(open_page, page):
    app = open_page(page)

    assert app.title and not app.error


def test_a_wrong_setting_is_named_on_the_page_not_a_traceback(monkeypatch):
    monkeypatch.setenv("TUNEDECK_HEARTBEAT_TIMEOUT", "soon")
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()

    assert not app.exception
    [error] = [as_shown(error.value) for error in app.error]
    assert error.startswith("TuneDeck cannot start: TUNEDECK_HEARTBEAT_TIMEOUT: Input should be a valid number")


def test_the_app_replaces_an_embedded_worker_that_died(tmp_path, monkeypatch):
    """It was started once per server: once killed, queued runs waited and its runs read "running" for good."""
    from core import remote
    from core.settings import Settings
    from jobs.lock import worker_pids
    from tests.waiting import wait_for

    monkeypatch.setenv("TUNEDECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUNEDECK_EMBEDDED_WORKER", "1")
    settings = Settings(data_dir=tmp_path)
    try:
        AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        (first,) = wait_for(lambda: worker_pids(settings), timeout=60, what="the embedded worker to start")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: not worker_pids(settings), timeout=30, what="the killed worker's lock to go")

        AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()

        (second,) = wait_for(lambda: worker_pids(settings), timeout=60, what="a new worker to start")
        assert second != first
    finally:
        for pid in worker_pids(settings):
            os.kill(pid, signal.SIGTERM)
        remote.stop((tmp_path / "tunedeck.duckdb").resolve())


FIRST_VISIT = """
import sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file("app.py", default_timeout=60)
app.switch_page(sys.argv[1])
app.run()
print([e.value for e in app.exception], [e.value for e in app.error])
"""


@pytest.mark.parametrize("page", ["pages/run.py", "pages/jobs.py", "pages/experiment.py", "pages/compare.py"])
def test_a_wrong_setting_is_named_on_a_deep_links_first_visit_too(page):
    """Until app.py has run once in a server, Streamlit runs a deep link's page file on its own; the pages that import
    the queue (which reads the settings) crashed before they could hand over to app.py. A fresh interpreter: nothing
    imported yet, as in a server just started."""
    env = {**os.environ, "TUNEDECK_HEARTBEAT_TIMEOUT": "soon"}
    done = subprocess.run([sys.executable, "-c", FIRST_VISIT, page], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    exceptions, errors = done.stdout.strip().splitlines()[-1].split("] [", 1)
    assert exceptions == "["
    assert "TuneDeck cannot start: TUNEDECK" in errors and "HEARTBEAT" in errors


@pytest.mark.parametrize(
    ("page", "param"),
    [
        ("pages/experiments.py", None),
        ("pages/experiment.py", "experiment"),
        ("pages/runs.py", None),
        ("pages/run.py", "done"),
        ("pages/run.py", "failed"),
        ("pages/compare.py", "runs"),
        ("pages/adapters.py", None),
        ("pages/adapters.py", "adapter"),
        ("pages/jobs.py", None),
    ],
)
def test_every_page_renders_on_a_populated_store(open_page, populated, page, param):
    params = {
        None: {},
        "experiment": {"experiment": str(populated["experiment"])},
        "done": {"run": str(populated["done"])},
        "failed": {"run": str(populated["failed"])},
        "runs": {"runs": f"{populated['done']},{populated['failed']}"},
        "adapter": {"adapter": str(populated["adapter"])},
    }[param]

    app = open_page(page, **params)

    assert app.title, "every page has a title"


def test_experiments_page_lists_experiments_with_status_and_best_metric(open_page, populated):
    app = open_page("pages/experiments.py")

    table = table_with(app, "best")
    assert table["name"].tolist() == ["sentiment LoRA"]
    assert table["runs"].tolist() == [3]
    assert "running" in table["status"].iloc[0]
    assert table["best"].iloc[0] == "eval_loss 0.35"


def test_creating_an_experiment_from_the_form(open_page, app_store):
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))
    app.text_input(key="new_name").input("my first experiment")
    app.text_input(key="new_dataset").input("data/sample/sentiment.csv")  # relative to where the app runs
    app.run()
    assert "3,000 rows" in texts(app)

    assert not app.warning  # the sample data suits every shipped trainer
    app.button(key="create").click().run()

    (created,) = app_store.list_experiments().items
    assert created.name == "my first experiment"
    assert created.dataset == SAMPLE  # absolute: a worker started in another folder reads the same file
    assert f"Created experiment “my first experiment” (#{created.id})." in texts(app)  # named, as a delete says it
    assert app.text_input(key="new_name").value == ""  # ready for the next one, not a second try at this name


def test_experiment_validation_errors_are_shown_inline(open_page, app_store):
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))
    app.text_input(key="new_name").input("   ")
    app.run()
    app.button(key="create").click().run()

    assert "Name must not be empty." in texts(app)
    assert app_store.list_experiments().total == 0


def test_a_greyed_out_create_button_says_why(open_page):
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))

    app.text_input(key="new_dataset").input("").run()

    assert app.button(key="create").disabled
    assert "Give a dataset file to create the experiment." in texts(app)


def test_a_dataset_the_shipped_trainers_would_refuse_is_warned_of_but_can_be_used(open_page, tmp_path, monkeypatch):
    """A command's script may read any columns, so the experiment can still be made."""
    monkeypatch.setenv("TUNEDECK_DATASET_ROOTS", str(tmp_path))
    path = tmp_path / "no_text.csv"
    path.write_text("foo,bar\n1,2\n3,4\n")
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))
    app.text_input(key="new_name").input("other columns")
    app.text_input(key="new_dataset").input(str(path))
    app.run()

    assert [as_shown(w.value) for w in app.warning] == ["The builtin and peft trainers read a 'text' column (peft also 'prompt' and 'completion')."]
    assert not app.button(key="create").disabled


def test_a_missing_dataset_is_reported_and_blocks_creation(open_page, app_store):
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))
    app.text_input(key="new_name").input("x")
    app.text_input(key="new_dataset").input("data/nowhere.csv")
    app.run()

    assert "Dataset file data/nowhere.csv does not exist; check the path." in texts(app)
    assert app.button(key="create").disabled


def test_a_dataset_outside_the_allowed_folders_is_said_once_as_a_sentence(open_page, app_store):
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))
    app.text_input(key="new_name").input("x")
    app.text_input(key="new_dataset").input("/etc/passwd")
    app.run()

    [said] = [as_shown(error.value) for error in app.error]
    assert said.startswith("Dataset /etc/passwd is outside the folders datasets may come from")  # not "Dataset: dataset"


def test_status_filter_and_name_search(open_page, populated, app_store):
    app_store.create_experiment({"name": "other", "dataset": SAMPLE})
    app = open_page("pages/experiments.py")

    app.multiselect(key="status").select("created").run()
    assert table_with(app, "best")["name"].tolist() == ["other"]

    app.multiselect(key="status").unselect("created").run()
    app.text_input(key="q").input("sentiment ").run()  # pasted, with a stray space
    assert table_with(app, "best")["name"].tolist() == ["sentiment LoRA"]


def test_an_empty_store_says_to_create_an_experiment_and_an_empty_filter_to_clear_it(open_page):
    app = open_page("pages/experiments.py")
    assert [info.value for info in app.info] == ["No experiments yet: create one above."]

    app.text_input(key="q").input("nothing like it").run()
    assert [info.value for info in app.info] == ["No experiments match. Create one above, or clear the filters."]


def test_a_filter_that_only_deleted_experiments_match_says_show_deleted_finds_them(open_page, app_store):
    gone = app_store.create_experiment({"name": "sweep one", "dataset": SAMPLE})
    app_store.create_experiment({"name": "baseline", "dataset": SAMPLE})
    app_store.delete_experiment(gone)
    app = open_page("pages/experiments.py")

    app.text_input(key="q").input("sweep").run()
    assert [info.value for info in app.info] == ["No experiments match, but 1 deleted experiment does: turn on “Show deleted” to see it."]

    app.toggle(key="deleted").set_value(True).run()
    assert table_with(app, "best")["name"].tolist() == ["sweep one"]


def test_a_shared_link_opens_the_list_with_its_name_filter(open_page, populated, app_store):
    app_store.create_experiment({"name": "other", "dataset": SAMPLE})

    app = open_page("pages/experiments.py", q="sentiment")

    assert table_with(app, "best")["name"].tolist() == ["sentiment LoRA"]


def test_the_whole_list_state_is_in_its_url_so_back_or_a_link_shows_it_as_it_was(open_page, populated, app_store):
    app_store.create_experiment({"name": "older", "dataset": SAMPLE})
    app_store.delete_experiment(app_store.create_experiment({"name": "gone", "dataset": SAMPLE}))

    app = open_page("pages/experiments.py", deleted="true", desc="false")

    assert app.toggle(key="deleted").value is True and app.toggle(key="desc").value is False
    names = table_with(app, "best")["name"].tolist()
    assert "gone" in " ".join(names) and names.index("sentiment LoRA") < names.index("older")


def test_another_experiment_opened_in_the_tab_starts_on_its_own_panels(open_page, populated, app_store):
    """Streamlit keeps a URL-bound widget's value for the next widget with its key: experiment B, opened after A
    showed loss alone, opened on loss alone too, with &metrics=loss written into B's address."""
    other = app_store.create_experiment({"name": "other", "dataset": SAMPLE})
    run = app_store.create_run(other, {"learning_rate": 0.01})
    with MetricWriter(app_store) as writer:
        writer.log_series(run, "loss", [1, 2], [1.0, 0.5])
        writer.log_series(run, "eval_loss", [1, 2], [0.9, 0.6])
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]), metrics="loss")
    assert app.multiselect(key="metrics").value == ["loss"]

    app.query_params.clear()
    app.switch_page("pages/experiments.py").run()
    app.query_params["experiment"] = str(other)
    app.switch_page("pages/experiment.py").run()

    assert app.multiselect(key="metrics").value == ["eval_loss", "loss"]  # B's own defaults
    assert "metrics" not in app.query_params


def test_the_order_toggle_says_what_descending_means_for_the_sort_chosen(open_page, populated, app_store):
    app_store.create_experiment({"name": "another", "dataset": SAMPLE})

    by_date, by_name = open_page("pages/experiments.py"), open_page("pages/experiments.py", sort="Name")

    assert by_date.toggle(key="desc").label == "Newest first"
    assert by_name.toggle(key="desc").label == "Z to A"  # it read "Newest / highest first" beside "Name"
    assert table_with(by_name, "best")["name"].tolist() == ["sentiment LoRA", "another"]
    by_name.toggle(key="desc").set_value(False).run()
    assert table_with(by_name, "best")["name"].tolist() == ["another", "sentiment LoRA"]


def test_choosing_a_sort_starts_it_in_its_own_order(open_page, populated, app_store):
    """A sort by name went on in the date's "newest first", so Z to A."""
    app_store.create_experiment({"name": "another", "dataset": SAMPLE})
    app = open_page("pages/experiments.py")

    app.selectbox(key="sort").set_value("name").run()
    assert app.toggle(key="desc").value is False
    assert table_with(app, "best")["name"].tolist() == ["another", "sentiment LoRA"]
    assert app.query_params["desc"] in ("false", ["false"])  # a link to share keeps the order

    app.selectbox(key="sort").set_value("run_count").run()
    assert app.toggle(key="desc").value is True and app.toggle(key="desc").label == "Most runs first"
    assert not app.exception and not app.warning

def test_delete_asks_for_confirmation_then_restore_brings_it_back(open_page, populated, app_store):
    app = open_page("pages/experiments.py")
    assert "delete" not in [button.key for button in app.button]  # until "Delete or restore" is on

    app.toggle(key="managing").set_value(True).run()
    app.button(key="delete").click().run()
    assert app_store.list_experiments().total == 1
    app.button(key="confirm").click().run()
    assert app_store.list_experiments().total == 0
    assert app_store.get_run(populated["queued"]).status == "cancelled"

    app.toggle(key="deleted").set_value(True).run()
    app.toggle(key="managing").set_value(True).run()  # it went with the last experiment on the list
    app.button(key="restore").click().run()
    assert app_store.list_experiments().total == 1


def test_a_deleted_experiment_whose_name_was_taken_is_restored_under_a_new_name(open_page, populated, app_store):
    app_store.delete_experiment(populated["experiment"])
    app_store.create_experiment({"name": "sentiment LoRA", "dataset": SAMPLE})
    app = open_page("pages/experiments.py")
    app.toggle(key="deleted").set_value(True).run()
    app.toggle(key="managing").set_value(True).run()
    app.selectbox(key="manage").set_value(populated["experiment"]).run()

    app.button(key="restore").click().run()
    assert any("already exists" in error.value for error in app.error)  # and the box to give another name is there
    app.text_input(key=f"restore_as_{populated['experiment']}").input("sentiment LoRA, first sweep").run()
    app.button(key="restore").click().run()

    assert app_store.get_experiment(populated["experiment"]).name == "sentiment LoRA, first sweep"
    assert app_store.list_experiments().total == 2


def test_a_deleted_experiments_page_says_so_and_restores_it(open_page, app_store):
    experiment_id = app_store.create_experiment({"name": "gone", "dataset": SAMPLE})
    app_store.delete_experiment(experiment_id)

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    assert ":gray-badge[created (deleted)]" in texts(app)
    assert "No runs: it was deleted before any ran." in [info.value for info in app.info]
    app.button(key="restore_here").click().run()
    assert not app_store.get_experiment(experiment_id).is_deleted


def test_restoring_where_a_live_experiment_took_the_name_is_done_here_under_another(open_page, app_store):
    """The page sent people to the Experiments list, whose picker held only the page of experiments shown."""
    experiment_id = app_store.create_experiment({"name": "taken", "dataset": SAMPLE})
    app_store.delete_experiment(experiment_id)
    app_store.create_experiment({"name": "taken", "dataset": SAMPLE})
    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    app.button(key="restore_here").click().run()
    assert app_store.get_experiment(experiment_id).is_deleted
    assert any("already exists" in as_shown(error.value) for error in app.error)

    app.text_input(key=f"restore_here_as_{experiment_id}").input("taken before").run()
    app.button(key="restore_here").click().run()

    restored = app_store.get_experiment(experiment_id)
    assert (restored.is_deleted, restored.name) == (False, "taken before")
    assert "Restored “taken” as “taken before”." in texts(app)


def test_the_experiment_pages_aggregates_are_of_its_completed_runs_in_the_house_style(open_page, populated):
    """They showed "None" in empty cells, unrounded numbers and a failed run's last value as a result."""
    app = open_page("pages/experiment.py", opened=("aggregates_open",), experiment=str(populated["experiment"]))

    table = table_with(app, "completed runs")
    assert table.columns.tolist() == ["metric", "better", "best", "best run", "mean", "completed runs"]
    rows = {row["metric"]: row for row in table.to_dict("records")}
    assert (rows["eval_loss"]["better"], rows["eval_loss"]["best"], rows["eval_loss"]["completed runs"]) == ("↓ lower", 0.35, 1)
    assert rows["eval_loss"]["best run"].endswith(f"(#{populated['done']})")
    assert "None" not in table.astype(str).to_string()


def test_an_experiment_is_renamed_from_its_page(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("rename_open",), experiment=str(populated["experiment"]))

    app.text_input(key="rename_to").input("sentiment LoRA v2")
    app.button[[button.label for button in app.button].index("Rename")].click().run()

    assert app_store.get_experiment(populated["experiment"]).name == "sentiment LoRA v2"
    assert app.title[0].value == "sentiment LoRA v2"
    shown = in_page_order(app)
    said = shown.index("success: Renamed to “sentiment LoRA v2”.")
    first_tile = next(index for index, item in enumerate(shown) if item.startswith("metric: "))
    assert said < first_tile < shown.index("fold: Edit tags and note")  # at the top, not down by the tags section


def test_an_experiment_whose_primary_metric_is_loss_opens_on_loss_and_its_other_metric(open_page, app_store):
    experiment_id = app_store.create_experiment({"name": "no eval", "dataset": SAMPLE})
    run_id = app_store.create_run(experiment_id, {"epochs": 1})
    with MetricWriter(app_store) as writer:
        writer.log_series(run_id, "loss", [1, 2], [0.9, 0.5])
        writer.log_series(run_id, "accuracy", [1, 2], [0.6, 0.8])

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    assert app.multiselect(key="metrics").value == ["loss", "accuracy"]  # not loss twice


def test_a_run_that_logged_only_system_metrics_says_so_where_its_curves_go(open_page, app_store):
    experiment_id = app_store.create_experiment({"name": "failed early", "dataset": SAMPLE})
    run_id = app_store.create_run(experiment_id, {"epochs": 1})
    app_store.mark_running(run_id, worker="host:1")
    with MetricWriter(app_store) as writer:
        writer.log_series(run_id, "system/cpu_percent", [1, 2], [50.0, 60.0])
    app_store.fail_run(run_id, "CUDA out of memory")

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    assert "Only system metrics (CPU, memory) were logged: choose them above to chart them." in texts(app)


def test_a_run_cancelled_before_it_logged_anything_does_not_say_metrics_are_on_their_way(open_page, app_store):
    """It read "No metrics logged yet." as a queued run's page does."""
    experiment_id = app_store.create_experiment({"name": "cancelled early", "dataset": SAMPLE})
    cancelled, queued = (app_store.create_run(experiment_id, {"epochs": 1}) for _ in range(2))
    app_store.cancel_run(cancelled)

    said = [info.value for info in open_page("pages/run.py", run=str(cancelled)).info]
    assert "No metrics: the run cancelled before it logged any." in said and "No metrics logged yet." not in said
    assert "No metrics logged yet." in [info.value for info in open_page("pages/run.py", run=str(queued)).info]


def test_experiment_deep_link_shows_runs_best_metrics_and_error(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]))

    assert app.title[0].value == "sentiment LoRA"
    runs = table_with(app, "loss curve")
    assert runs["id"].tolist() == [populated["queued"], populated["failed"], populated["done"]]
    assert "v1" in runs["adapter"].iloc[2]
    assert any(m.label == "best final eval_loss" and m.value == "0.35" for m in app.metric)


def test_selected_runs_open_the_compare_page(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]))

    app.multiselect(key="compare_pick").set_value([populated["done"], populated["failed"]]).run()
    app.button(key="compare").click().run()

    assert app.query_params["runs"] == f"{populated['done']},{populated['failed']}"
    assert app.title[0].value == "Compare runs"
    assert not app.exception


def test_runs_are_filtered_and_sorted_by_their_metrics(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]))

    app.selectbox(key="run_sort").set_value("eval_loss").run()
    assert table_with(app, "loss curve")["id"].tolist() == [populated["done"], populated["failed"], populated["queued"]]

    app.toggle(key="run_descending").set_value(True).run()
    assert table_with(app, "loss curve")["id"].tolist() == [populated["failed"], populated["done"], populated["queued"]]

    app.text_input(key="run_filter").input("metrics.eval_loss < 0.5").run()
    assert table_with(app, "loss curve")["id"].tolist() == [populated["done"]]
    assert "1 of 3 runs match." in texts(app)


def test_a_run_filter_that_cannot_be_read_is_explained_and_every_run_stays(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]))

    app.text_input(key="run_filter").input("metrics.bleu > 0.5").run()

    assert "Unknown field `metrics.bleu` at column 1: no run here has it; its metrics are eval_loss, loss" in texts(app)
    assert len(table_with(app, "loss curve")) == 3


def test_comparing_one_run_says_to_add_another(open_page, populated):
    app = open_page("pages/compare.py", runs=str(populated["done"]))

    assert "One run alone: add another run ID above to compare it with." in [info.value for info in app.info]


def test_run_ids_typed_on_the_compare_page_go_into_its_address_and_a_new_address_fills_the_box(open_page, populated):
    """The box is kept in the URL by hand (`text_in_url`), not bound to it: typing still makes a link to share, and
    an address changed from outside (a link, Back) still shows in the box."""
    app = open_page("pages/compare.py", runs=str(populated["done"]))
    assert app.text_input(key="runs_in_url").value == str(populated["done"])

    app.text_input(key="runs_in_url").input(f"{populated['done']}, {populated['failed']}").run()
    assert app.query_params["runs"] == f"{populated['done']}, {populated['failed']}"
    assert "One run alone: add another run ID above to compare it with." not in [info.value for info in app.info]

    app.query_params["runs"] = str(populated["failed"])
    app.run()
    assert app.text_input(key="runs_in_url").value == str(populated["failed"])

    app.text_input(key="runs_in_url").input("").run()
    assert "runs" not in app.query_params
    assert "Choose runs on an experiment page and press “Compare selected”, or type run IDs above." in [info.value for info in app.info]

def test_compare_highlights_the_best_run_and_shows_config_diff(open_page, populated, app_store):
    other = app_store.create_run(populated["experiment"], {"learning_rate": 0.5, "epochs": 2})
    app_store.mark_running(other, worker="test")
    with MetricWriter(app_store) as writer:
        writer.log_series(other, "eval_loss", [50], [0.6])
    app_store.complete_run(other)

    app = open_page("pages/compare.py", runs=f"{populated['done']},{populated['failed']},{other}")

    metrics = table_with(app, "better")
    row = metrics[metrics["metric"] == "eval_loss"].iloc[0]
    assert row["better"] == "↓ lower"
    assert row["best run"].endswith(f"(#{populated['done']})")
    marked = [column for column in metrics.columns[3:] if row[column].startswith("★")]
    assert marked == [row["best run"]], "the best run's cell, and only it, is marked"
    config = table_with(app, "setting")
    assert config["setting"].tolist() == ["learning_rate"]


def test_a_setting_only_some_compared_runs_have_shows_a_dash_for_the_others(open_page, populated, app_store):
    """A trainer-reported setting (effective_epochs) a queued run does not have yet showed an empty cell."""
    ranked = app_store.create_run(populated["experiment"], {"learning_rate": 0.01, "epochs": 2, "lora_rank": 8})

    app = open_page("pages/compare.py", runs=f"{populated['done']},{ranked}")

    config = table_with(app, "setting").set_index("setting")
    assert sorted(config.loc["lora_rank"].tolist()) == ["8", "–"]


def test_compare_stars_no_run_when_one_alone_is_in_the_race(open_page, populated):
    app = open_page("pages/compare.py", runs=f"{populated['done']},{populated['failed']}")

    metrics = table_with(app, "better")
    row = metrics[metrics["metric"] == "eval_loss"].iloc[0]
    assert row["best run"] == "–"
    assert not [column for column in metrics.columns[3:] if row[column].startswith("★")]


def test_the_jobs_page_names_each_runs_experiment_and_confirms_a_cancel(open_page, populated, app_store):
    app = open_page("pages/jobs.py")

    table = table_with(app, "last heartbeat")
    assert set(table["experiment"]) == {"sentiment LoRA"}  # its name, not its ID
    app.selectbox(key="cancel_pick").set_value(next(r for r in app_store.list_active_runs() if r.id == populated["queued"]))
    app.button(key="cancel").click().run()
    assert app_store.get_run(populated["queued"]).status == "queued"  # asked first, as a delete is
    assert [as_shown(warning.value) for warning in app.warning] == [f"Cancel run-3 (#{populated['queued']})? It will not start."]
    app.button(key="cancel_yes").click().run()

    assert app_store.get_run(populated["queued"]).status == "cancelled"
    assert [as_shown(success.value) for success in app.success] == [f"Cancelled run-3 (#{populated['queued']}) before it started."]


def test_cancelling_a_running_run_says_when_its_training_stops(open_page, populated, app_store):
    running = populated["queued"]
    app_store.mark_running(running, worker="host:1")
    app = open_page("pages/run.py", run=str(running))

    app.button(key="cancel").click().run()
    app.button(key="cancel_yes").click().run()

    assert app_store.get_run(running).status == "cancelled"
    (said,) = [as_shown(success.value) for success in app.success]
    assert re.fullmatch(rf"Cancelled run-3 \(#{running}\): its training is told to stop at its next heartbeat \(every [\d.]+ s\); what it logged is kept\.", said)
    assert "cancel" not in [button.key for button in app.button]  # nothing left to cancel


def test_a_cancel_asked_for_by_mistake_is_kept_back(open_page, populated, app_store):
    """One click on "Cancel run" stopped a training for good."""
    running = populated["queued"]
    app_store.mark_running(running, worker="host:1")
    app = open_page("pages/run.py", run=str(running))

    app.button(key="cancel").click().run()
    assert [as_shown(warning.value) for warning in app.warning] == [
        f"Cancel run-3 (#{running})? Its training stops at its next heartbeat; what it logged is kept."
    ]
    app.button(key="cancel_keep").click().run()

    assert app_store.get_run(running).status == "running"
    assert not app.warning and "cancel" in [button.key for button in app.button]

def test_a_compare_link_naming_a_run_that_does_not_exist_compares_the_others(open_page, populated):
    app = open_page("pages/compare.py", runs=f"{populated['done']},999999,{populated['failed']}")

    assert [as_shown(w.value) for w in app.warning][0] == "No run with ID 999999: comparing the others."
    assert "best run" in table_with(app, "best run").columns

    two = open_page("pages/compare.py", runs=f"{populated['done']},999999,999998")
    assert [as_shown(w.value) for w in two.warning][0] == "No runs with IDs 999999, 999998: comparing the others."


def test_a_compare_link_with_a_typo_in_one_id_compares_the_others(open_page, populated):
    """One malformed ID showed only an error, and nothing was compared."""
    app = open_page("pages/compare.py", runs=f"{populated['done']},x2,{populated['failed']},-1")

    assert [as_shown(w.value) for w in app.warning][0] == "Skipped “x2”, “-1”: run IDs are positive whole numbers, like 12."
    assert "best run" in table_with(app, "best run").columns


def test_comparing_runs_of_two_experiments_says_which_run_is_from_which(open_page, populated, app_store):
    other = app_store.create_experiment({"name": "summaries", "dataset": SAMPLE})
    stranger = app_store.create_run(other, {"learning_rate": 0.2})
    app_store.cancel_run(stranger)

    app = open_page("pages/compare.py", runs=f"{populated['done']},{stranger}")

    assert any("These runs come from 2 experiments" in info.value for info in app.info)
    overview = table_with(app, "experiment")
    assert overview["experiment"].tolist() == ["sentiment LoRA", "summaries"]
    assert overview["status"].tolist() == ["completed", "cancelled"]
    assert not any("come from" in info.value for info in open_page("pages/compare.py", runs=str(populated["done"])).info)


def test_comparing_runs_of_experiments_that_disagree_on_a_direction_says_so_and_stars_no_run(open_page, populated, app_store):
    other = app_store.create_experiment({"name": "summaries", "dataset": SAMPLE})
    app_store.set_metric_direction(other, "eval_loss", "max")
    stranger = app_store.create_run(other, {"learning_rate": 0.2})
    app_store.mark_running(stranger, worker="test")
    with MetricWriter(app_store) as writer:
        writer.log_series(stranger, "eval_loss", [1], [0.1])
    app_store.complete_run(stranger)

    app = open_page("pages/compare.py", runs=f"{populated['done']},{stranger}")

    assert [warning.value.replace("\\", "") for warning in app.warning] == [  # markdown-escaped
        "Their experiments disagree on which way is better for eval_loss (one was set to count the other way), so no "
        "run is marked best for it."
    ]
    final = table_with(app, "best run")
    assert final.loc[final["metric"].str.startswith("eval_loss"), "best run"].tolist() == ["–"]


def test_new_run_form_starts_one_run_per_swept_learning_rate(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    app.radio(key="sweep_mode").set_value("Grid").run()
    app.text_area(key="sweep_lines").input("learning_rate = 0.001, 0.002").run()
    app.button[[b.label for b in app.button].index("Start 2 runs")].click().run()

    newest = app_store.list_runs(populated["experiment"])[:2]
    assert sorted(run.config["learning_rate"] for run in newest) == [0.001, 0.002]
    [started] = [success.value.replace("\\", "") for success in app.success]  # markdown-escaped
    assert started == f"Started 2 runs: {', '.join(f'{run.name} (#{run.id})' for run in reversed(newest))}."


def test_the_started_runs_are_announced_once_and_only_on_their_experiment(open_page, populated, app_store):
    other = app_store.create_experiment({"name": "another", "dataset": SAMPLE})
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    app.button[[b.label for b in app.button].index("Start")].click().run()
    assert any(as_shown(success.value).startswith("Started 1 run: ") for success in app.success)

    app.query_params["experiment"] = str(other)  # the next page this session opens: another experiment
    app.run()

    assert not [success.value for success in app.success]


def test_a_bad_sweep_is_a_friendly_error(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    app.radio(key="sweep_mode").set_value("Grid").run()
    app.text_area(key="sweep_lines").input("learning_rate = fast, slow").run()
    assert "Line 1 ('learning_rate = fast, slow'): learning_rate must be a valid number, not 'fast'." in texts(app)
    assert app.button[[b.label for b in app.button].index("Start the sweep")].disabled  # a sweep it cannot start

    assert len(app_store.list_runs(populated["experiment"])) == 3


def test_the_primary_metric_is_chosen_among_the_metrics_the_runs_logged(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("primary_open",), experiment=str(populated["experiment"]))
    assert app.selectbox(key="primary_pick").options == ["eval_loss", "loss"]

    app.selectbox(key="primary_pick").set_value("loss")
    app.button[[b.label for b in app.button].index("Save")].click().run()

    assert app_store.get_experiment(populated["experiment"]).primary_metric == "loss"
    assert any(as_shown(caption.value).startswith("Primary metric: loss (best ") for caption in app.caption)


def test_a_run_and_its_adapter_of_a_deleted_experiment_say_their_experiment_is_deleted(open_page, populated, app_store):
    adapter = app_store.get_run(populated["done"]).adapter.id
    app_store.delete_experiment(populated["experiment"])

    run_page = open_page("pages/run.py", run=str(populated["done"]))
    adapter_page = open_page("pages/adapters.py", adapter=str(adapter))  # its lineage read as a live experiment's

    for app in (run_page, adapter_page):
        assert "Experiment: sentiment LoRA (deleted)" in [as_shown(link.label) for link in app.get("page_link")]


def test_run_page_shows_error_traceback_and_adapter_link(open_page, populated):
    failed = open_page("pages/run.py", run=str(populated["failed"]))
    done = open_page("pages/run.py", run=str(populated["done"]))

    assert "ValueError: learning rate too high" in texts(failed)
    assert any("Adapter sentiment LoRA v1" in link.label for link in done.get("page_link"))


@pytest.mark.parametrize(
    ("kept", "label"),
    [
        ("Traceback (most recent call last):\n  File \"train.py\", line 3\nValueError: bad rank", "Traceback"),
        ("epoch 3/4: loss 0.41\nKilled", "Last output"),  # what a process killed by a signal printed last
    ],
)
def test_a_failed_runs_page_names_what_it_kept_a_traceback_or_the_last_output(open_page, app_store, kept, label):
    experiment_id = app_store.create_experiment({"name": "crashes", "dataset": SAMPLE})
    run_id = app_store.create_run(experiment_id, {"epochs": 1})
    app_store.mark_running(run_id, worker="host:1")
    app_store.fail_run(run_id, "it stopped", traceback=kept)

    app = open_page("pages/run.py", run=str(run_id))

    assert [expander.label for expander in app.expander if expander.label in ("Traceback", "Last output")] == [label]
    assert kept in [code.value for code in app.code]


@pytest.mark.parametrize("shared", [False, True], ids=["data folder", "shared artifact root"])
def test_run_page_offers_the_files_a_script_logged_for_download(open_page, app_store, tmp_path, monkeypatch, shared):
    """With TUNEDECK_ARTIFACT_ROOT (team mode) a file another machine's script logged is on the share."""
    if shared:
        (tmp_path / "shared").mkdir()
        monkeypatch.setenv("TUNEDECK_ARTIFACT_ROOT", str(tmp_path / "shared"))
    report = tmp_path / "eval_report.json"
    report.write_text('{"accuracy": 0.9}')
    with tracking.start_run("with files", store=app_store) as run:
        run.log_file(report)

    app = open_page("pages/run.py", opened=("files_open",), run=str(run.id))

    assert [button.proto.label for button in app.get("download_button")].count("eval_report.json") == 1


def test_adapter_detail_shows_files_and_lineage(open_page, populated):
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))

    assert app.title[0].value == "sentiment LoRA v1"
    assert table_with(app, "file")["file"].tolist() == ["adapter_config.json"]
    links = {as_shown(link.label): link.proto.icon for link in app.get("page_link")}
    # with the sidebar's icons: bare, the two read as plain text beside the adapter's version
    assert links["Experiment: sentiment LoRA"] == ":material/folder_open:"
    assert links[f"Run: run-1 (#{populated['done']})"] == ":material/monitoring:"
    assert [button.proto.label for button in app.get("download_button")] == ["Download as zip"]
    assert "**Base model** tiny\\-base" in [markdown.value for markdown in app.markdown]  # whole, not in a tile


@pytest.mark.parametrize(
    ("page", "params", "message"),
    [
        ("pages/run.py", {"run": "abc"}, "is not a positive whole number"),
        ("pages/run.py", {"run": "999"}, "no run with ID 999"),
        ("pages/run.py", {"run": "9" * 20}, f"The run ID '{'9' * 20}' is larger than any ID TuneDeck gives out."),
        ("pages/experiment.py", {"experiment": "-1"}, "is not a positive whole number"),
        ("pages/experiment.py", {"experiment": "424242"}, "no experiment with ID 424242"),
        ("pages/compare.py", {"runs": "1,x"}, "Skipped “x”: run IDs are positive whole numbers, like 12."),
        ("pages/compare.py", {"runs": "777"}, "no run with ID 777"),
        ("pages/adapters.py", {"adapter": "1; DROP TABLE adapters"}, "is not a positive whole number"),
    ],
)
def test_bad_deep_links_show_a_friendly_message(open_page, page, params, message):
    app = open_page(page, **params)

    assert message.lower() in texts(app).lower()


@pytest.mark.parametrize(
    ("page", "params", "back", "heading"),
    [
        ("pages/adapters.py", {"adapter": "999"}, "All adapters", "Adapters"),
        ("pages/run.py", {"run": "abc"}, "All runs", "Runs"),
        ("pages/experiment.py", {"experiment": "999"}, "All experiments", "Experiments"),
    ],
)
def test_a_page_opened_with_a_wrong_id_leads_back_to_its_list(open_page, populated, page, params, back, heading):
    """Such a page showed a message and nothing else: no way on but the sidebar."""
    app = open_page(page, **params)
    assert "deleted" not in texts(app)  # deleted experiments still open; runs and adapters are never deleted

    app.button(key="back_from_bad_link").click().run()

    assert back in [b.label for b in open_page(page, **params).button]
    assert app.title[0].value == heading
    assert not app.query_params.get(next(iter(params)))


def test_names_with_script_tags_show_as_text(open_page, app_store):
    experiment_id = app_store.create_experiment({"name": "<script>alert('x')</script> **bold**", "dataset": SAMPLE})

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    title = app.title[0].value
    assert "\\<script\\>" in title and "\\*\\*bold\\*\\*" in title
    assert not any(getattr(m.proto, "allow_html", False) for m in app.markdown)


def test_all_adapters_goes_back_to_the_list_without_the_adapter_in_the_url(open_page, populated):
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))

    app.button(key="all_adapters").click().run()

    assert "adapter" not in app.query_params
    assert app.title[0].value == "Adapters"


def test_a_name_is_shown_as_typed_in_messages_and_links_too(open_page, populated, app_store):
    """Not only in titles: a rename's confirmation, a taken name's error, the links and badges that name it."""
    experiment_id = populated["experiment"]
    app = open_page("pages/experiment.py", opened=("rename_open",), experiment=str(experiment_id))
    app.text_input(key="rename_to").input("renamed **ok**")
    next(button for button in app.button if button.label == "Rename").click().run()
    assert [success.value for success in app.success] == ["Renamed to “renamed \\*\\*ok\\*\\*”\\."]


    app_store.create_experiment({"name": "taken `name`", "dataset": SAMPLE})
    app.text_input(key="rename_to").input("taken `name`")
    next(button for button in app.button if button.label == "Rename").click().run()
    assert any("\\`name\\`" in error.value for error in app.error)

    run = open_page("pages/run.py", run=str(populated["done"]))
    assert "Experiment: renamed \\*\\*ok\\*\\*" in [link.label for link in run.get("page_link")]

    app.text_input(key="rename_to").input("C:\\models\\it's")
    next(button for button in app.button if button.label == "Rename").click().run()
    assert [as_shown(success.value) for success in app.success] == ["Renamed to “C:\\models\\it's”."]  # repr doubled them


# -- no rough edges ------------------------------------------------------------------------------


def test_a_pasted_ten_thousand_character_name_is_refused_saying_how_long_it_may_be(open_page, app_store):
    app = open_page("pages/experiments.py", opened=("new_experiment_open",))
    app.text_input(key="new_name").input("x" * 10_000)
    app.run()
    app.button(key="create").click().run()

    assert "Name is too long: at most 200 characters are allowed, and this one has 10,000." in texts(app)
    assert app_store.list_experiments().total == 0


def test_a_search_with_odd_characters_points_at_the_character_not_a_pattern(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]))

    app.text_input(key="run_filter").input("acc$ > 0.5").run()

    assert "Unexpected `$` at column 4" in texts(app)
    assert "^[" not in texts(app)


def test_one_experiment_is_counted_in_the_singular(open_page, populated):
    app = open_page("pages/experiments.py")

    assert "1 experiment · page 1 of 1" in texts(app)


@pytest.mark.parametrize(
    ("link", "shown"), [("2", "page 2 of 2"), ("9", "page 2 of 2"), ("two", "page 1 of 2"), ("²", "page 1 of 2"), ("0", "page 1 of 2")]
)
def test_a_link_to_a_page_of_the_list_opens_on_that_page(open_page, app_store, link, shown):
    """`/?page=2` (a shared link, a reload) drew page 1 under a pager that said 2; `/?page=9` drew the last page
    under a pager that said 1."""
    for number in range(25):
        app_store.create_experiment({"name": f"bulk {number:02}", "dataset": SAMPLE})

    app = open_page("pages/experiments.py", page=link)

    assert f"25 experiments · {shown}" in texts(app)
    assert f"page {app.session_state['page']} of 2" == shown  # the pager's own value


def test_another_sort_or_filter_starts_at_the_first_page(open_page, app_store):
    for number in range(25):
        app_store.create_experiment({"name": f"bulk {number:02}", "dataset": SAMPLE})
    app = open_page("pages/experiments.py")
    app.session_state["page"] = 2  # what the pagination's "2" does
    app.run()
    assert "25 experiments · page 2 of 2" in texts(app)

    app.selectbox(key="sort").set_value("name").run()
    assert "25 experiments · page 1 of 2" in texts(app)

    app.session_state["page"] = 2
    app.run()
    app.text_input(key="q").input("bulk 0").run()
    app.text_input(key="q").input("").run()
    assert "25 experiments · page 1 of 2" in texts(app)


def test_small_words_fit_the_state_they_describe(open_page, populated, app_store):
    """An ended run's empty log said "No output yet."; an experiment no run had scored said "(best –)"; the Jobs page
    said "A worker on this machine's data folder does not run (...)"."""
    ended = open_page("pages/run.py", opened=("log_open",), run=str(populated["failed"]))
    waiting = open_page("pages/run.py", opened=("log_open",), run=str(populated["queued"]))
    fresh = app_store.create_experiment({"name": "nothing logged", "dataset": SAMPLE})
    app_store.create_run(fresh, {"epochs": 1})

    assert "The run wrote no output." in texts(ended) and "No output yet." in texts(waiting)
    assert "Primary metric: eval_loss (no completed run has it yet)" in texts(open_page("pages/experiment.py", experiment=str(fresh)))
    assert "No worker runs for this machine's data folder: `tunedeck worker` starts one." in texts(open_page("pages/jobs.py"))


def test_no_page_prints_a_stray_none(open_page, populated):
    for page, params in [
        ("pages/adapters.py", {}),
        ("pages/adapters.py", {"adapter": str(populated["adapter"])}),
        ("pages/experiment.py", {"experiment": str(populated["experiment"])}),
        ("pages/run.py", {"run": str(populated["queued"])}),
    ]:
        app = open_page(page, **params)
        assert "None" not in texts(app).split(), page


def test_a_delete_takes_the_experiment_off_the_list_in_the_same_click(open_page, populated):
    app = open_page("pages/experiments.py")
    app.toggle(key="managing").set_value(True).run()
    app.button(key="delete").click().run()

    app.button(key="confirm").click().run()

    assert "Deleted “sentiment LoRA”; cancelled 1 active run." in texts(app)
    assert "0 experiments · page 1 of 1" in texts(app)
    assert not [button for button in app.button if button.key == "confirm"]


# -- diverged runs and the best adapter ----------------------------------------------------------


@pytest.fixture
def diverged(app_store, tmp_path):
    """Two completed runs with adapters: a good one, and one whose loss ended 100x above its start."""
    store = app_store
    experiment_id = store.create_experiment({"name": "sweep", "dataset": SAMPLE})
    ids = {}
    for name, loss, eval_loss in (("good", [2.0, 1.0, 0.5], 0.3), ("bad", [2.0, 50.0, 200.0], 9.0)):
        run_id = store.create_run(experiment_id, {"learning_rate": 0.01 if name == "good" else 1.0, "epochs": 1})
        with MetricWriter(store) as writer:
            writer.log_series(run_id, "loss", [1, 2, 3], loss)
            writer.log_series(run_id, "eval_loss", [3], [eval_loss])
        store.mark_running(run_id, worker="host:1")
        folder = tmp_path / f"adapter-{run_id}"
        folder.mkdir()
        spec = {"path": str(folder), "base_model": "tiny-base", "size_bytes": 1, "checksum": "sha256:x"}
        ids[name] = (run_id, store.complete_run(run_id, spec).id)
    return experiment_id, ids


def test_a_diverged_run_is_badged_in_the_runs_table(open_page, diverged):
    experiment_id, ids = diverged

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    runs = table_with(app, "loss curve").set_index("id")
    assert list(runs.loc[ids["bad"][0], "status"]) == ["completed", "diverged"]  # two coloured tags
    assert list(runs.loc[ids["good"][0], "status"]) == ["completed"]
    assert "1 run diverged" in texts(app)


@pytest.mark.parametrize(("page", "table"), [("pages/experiment.py", "loss curve"), ("pages/runs.py", "experiment")])
def test_a_live_runs_tables_numbers_have_room_for_any_value_they_may_come_to_hold(open_page, populated, page, table):
    """The grid keeps the widths of its first draw: a running run's loss that fell to 0.00007964 showed as
    "00007964", cut on the left."""
    app = open_page(page, experiment=str(populated["experiment"]))

    grid = next(frame for frame in app.dataframe if table in frame.value.columns)
    columns = json.loads(grid.proto.columns)
    assert columns["loss"]["width"] >= fitting_width(["0.000001234"])
    assert columns["eval_loss"]["width"] >= fitting_width(["0.000001234"])


def test_a_loss_past_what_the_grid_takes_is_shown_to_4_significant_digits(open_page, app_store):
    """A run that blew up to 2.67e169 showed the grid's own error in its loss cell."""
    experiment_id = app_store.create_experiment({"name": "blew up", "dataset": SAMPLE})
    calm, blew_up = (app_store.create_run(experiment_id, {}) for _ in range(2))
    with MetricWriter(app_store) as writer:
        writer.log_series(calm, "loss", [1, 2], [2.0, 0.51234])
        writer.log_series(blew_up, "loss", [1, 2], [2.0, 2.6736e169])

    app = open_page("pages/experiment.py", experiment=str(experiment_id))

    runs = table_with(app, "loss").set_index("id")
    assert [runs.loc[calm, "loss"], runs.loc[blew_up, "loss"]] == ["0.5123", "2.674e+169"]


def test_a_diverged_run_is_badged_in_the_runs_pages_search_results(open_page, diverged):
    _, ids = diverged

    app = open_page("pages/runs.py")

    runs = table_with(app, "experiment").set_index("id")
    assert list(runs.loc[ids["bad"][0], "status"]) == ["completed", "diverged"]
    assert list(runs.loc[ids["good"][0], "status"]) == ["completed"]


def test_a_diverged_run_is_marked_in_the_compare_pages_status_row(open_page, diverged):
    _, ids = diverged
    good, bad = ids["good"][0], ids["bad"][0]

    app = open_page("pages/compare.py", runs=f"{good},{bad}")

    status = table_with(app, "metric").set_index("metric").loc["run status"]
    column = {run_id: next(name for name in status.index if name.endswith(f"(#{run_id})")) for run_id in (good, bad)}
    assert [status[column[good]], status[column[bad]]] == ["completed", "completed ⚠"]


def test_a_diverged_run_is_badged_on_its_page(open_page, diverged):
    _, ids = diverged

    app = open_page("pages/run.py", run=str(ids["bad"][0]))

    assert ":red-badge[:material/warning: diverged]" in texts(app)
    assert "This run diverged" in texts(app)


def test_a_long_runs_diverged_verdict_on_its_page_is_the_one_every_page_reads(open_page, app_store, tmp_path):
    """The run page judged its start from its own finer read: a first step neither the lowest nor the highest of the
    coarse read's first bucket made the run diverged on its page and sound on the Runs and Adapters pages."""
    experiment_id = app_store.create_experiment({"name": "long", "dataset": SAMPLE})
    run_id = app_store.create_run(experiment_id, {"learning_rate": 0.1})
    app_store.mark_running(run_id, worker="host:1")
    loss = [1.0] + [3.0 if step == 20 else 0.2 if step == 30 else 1.5 for step in range(2, 2_001)]
    with MetricWriter(app_store) as writer:
        writer.log_series(run_id, "loss", range(1, 2_001), loss[:-1] + [2.0])
    app_store.complete_run(run_id)
    elsewhere = run_id in find_diverged(app_store, [app_store.get_run(run_id)])

    shown = ":red-badge[:material/warning: diverged]" in texts(open_page("pages/run.py", run=str(run_id)))

    assert shown == elsewhere


def test_the_adapters_page_marks_the_best_adapter_and_the_diverged_one(open_page, diverged):
    _, ids = diverged

    app = open_page("pages/adapters.py")

    marks = table_with(app, "mark").set_index("id")["mark"]
    assert marks[ids["good"][1]] == "★ best"
    assert marks[ids["bad"][1]] == "⚠ diverged"


def test_adapters_of_a_deleted_experiment_and_of_the_one_that_reused_its_name_are_told_apart(open_page, populated, app_store, tmp_path):
    """Versions are numbered per adapter name, so a new experiment of a deleted one's name continues its series."""
    app_store.delete_experiment(populated["experiment"])
    again = app_store.create_experiment({"name": "sentiment LoRA", "dataset": SAMPLE})
    run_id = app_store.create_run(again, {"epochs": 1})
    app_store.mark_running(run_id, worker="host:1")
    (tmp_path / "again").mkdir()
    app_store.complete_run(run_id, {"path": str(tmp_path / "again"), "base_model": "tiny-base", "size_bytes": 0, "checksum": "sha256:y"})
    app = open_page("pages/adapters.py")

    table = table_with(app, "experiment")

    assert table[["version", "experiment"]].values.tolist() == [
        ["v2", f"sentiment LoRA (#{again})"],
        ["v1", f"sentiment LoRA (#{populated['experiment']}, deleted)"],
    ]


def test_an_adapter_from_a_diverged_run_says_so(open_page, diverged):
    _, ids = diverged

    app = open_page("pages/adapters.py", adapter=str(ids["bad"][1]))

    assert "The run that trained this adapter diverged" in texts(app)


# -- charts and the run page ---------------------------------------------------------------------


def test_the_metric_picker_reads_the_url_and_draws_one_full_width_panel_per_metric(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]), metrics="loss")

    assert app.multiselect(key="metrics").value == ["loss"]
    assert len(curve_charts(app)) == 1

    app.multiselect(key="metrics").set_value(["eval_loss", "loss"]).run()

    assert len(curve_charts(app)) == 2
    assert [chart.proto.spec for chart in curve_charts(app)][0].count('"text": "eval_loss"') == 1


def curve_charts(app) -> list:
    """The metric panels (the hyperparameter chart above them has a key of its own)."""
    return [chart for chart in app.get("vega_lite_chart") if not chart.key]


def test_a_run_compared_is_drawn_in_the_colour_its_experiment_page_gives_it(open_page, populated):
    """Colours went by place among the runs on the page: the failed run, second on its experiment's charts, was
    first, so another colour, on a comparison without the completed run."""
    experiment = open_page("pages/experiment.py", experiment=str(populated["experiment"]))
    compared = open_page("pages/compare.py", runs=str(populated["failed"]))

    def colour_of(app) -> str:
        scale = json.loads(curve_charts(app)[0].proto.spec)["layer"][0]["encoding"]["color"]["scale"]
        return next(colour for label, colour in zip(scale["domain"], scale["range"], strict=True) if label.endswith(f"(#{populated['failed']})"))

    assert colour_of(compared) == colour_of(experiment) == PALETTE[1]

def test_a_run_whose_length_is_known_shows_a_progress_bar(open_page, populated):
    app = open_page("pages/run.py", run=str(populated["done"]))  # completed: its last step is its length

    [bar] = app.get("progress")
    assert bar.proto.value == 100 and bar.proto.text.startswith("step 50 of 50")


def test_the_run_page_puts_progress_and_latest_values_first_and_the_log_in_a_searchable_fold(open_page, populated, app_store):
    logs = app_store.path.parent / "logs"
    logs.mkdir(exist_ok=True)
    lines = [f"step {step} loss {1 / step:.3f}" for step in range(1, 301)] + ["ValueError: learning rate too high"]
    (logs / f"run-{populated['failed']}.log").write_text("\n".join(lines))

    app = open_page("pages/run.py", run=str(populated["failed"]))

    assert not app.get("progress")  # its length was never known: the step alone, no empty bar
    assert any(caption.value.startswith("step 50 ·") for caption in app.caption)
    assert [m.label for m in app.metric][:2] == ["eval_loss", "loss"]
    log = next(expander for expander in app.expander if expander.label == "Log")
    assert not log.caption, "the log is read only once its fold is opened"
    app.session_state["log_open"] = True  # what a click on the fold does
    app.run()
    log = next(expander for expander in app.expander if expander.label == "Log")
    assert "Showing the last 200 of 301 lines." in [caption.value for caption in log.caption]
    download = next(button for button in log.get("download_button") if button.proto.label == "Download log")
    assert download.proto.url.endswith(".txt")  # the whole log, as text, beside the search

    app.text_input(key="log_search").input("valueerror").run()

    assert "1 line matches 'valueerror'; showing the last 1." in texts(app)
    assert app.code[-1].value == "ValueError: learning rate too high"
    app.text_input(key="log_search").input("[" + "x" * 300).run()
    assert "No line matches '[" + "x" * 56 + "...'." in texts(app)  # shortened, and said plainly


def test_a_run_of_thousands_of_metrics_shows_ten_tiles_and_the_rest_in_a_table(open_page, populated, app_store):
    """A tile a key: 5,000 per-layer metrics took the run page 55 s to draw and left the tab unresponsive."""
    run_id = app_store.create_run(populated["experiment"], {"learning_rate": 0.1})
    app_store.mark_running(run_id, worker="test")
    with MetricWriter(app_store) as writer:
        for layer in range(2_000):
            writer.log_series(run_id, f"layer{layer:04}/grad_norm", [1], [0.5])
        writer.log_series(run_id, "loss", [1], [0.25])

    app = open_page("pages/run.py", run=str(run_id))

    assert len(app.metric) == 10 and app.metric[0].label == "loss"
    rest = next(expander for expander in app.expander if expander.label == "All 2,001 metrics' latest values")
    table = rest.dataframe[0].value
    assert table.shape == (2_001, 3) and list(table.columns) == ["metric", "latest", "at"]


def test_a_running_run_silent_past_the_timeout_is_marked_as_likely_lost(open_page, populated, app_store, monkeypatch):
    """A run whose heartbeat was 29 minutes old looked as healthy as the others on the Jobs page."""
    monkeypatch.setenv("TUNEDECK_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.setenv("TUNEDECK_HEARTBEAT_TIMEOUT", "1")
    app_store.mark_running(populated["queued"], worker="gone:1")
    time.sleep(1.5)

    app = open_page("pages/jobs.py")

    assert table_with(app, "last heartbeat")["last heartbeat"].tolist()[0].endswith(" ago: silent, likely lost")
    assert [as_shown(w.value) for w in app.warning][0].startswith(
        "1 running run silent for more than 1 s: its worker is likely gone."
    )


def test_checking_for_lost_workers_just_after_the_app_started_says_when_silence_is_judged(open_page, monkeypatch):
    """A fresh app cannot tell whether the store was out of reach a moment ago: "No lost runs." alone would mislead."""
    monkeypatch.setattr(reaper, "_outages", reaper.Outages())  # as in an app that has just started
    app = open_page("pages/jobs.py")

    app.button(key="reap").click().run()

    [said] = [as_shown(message.value) for message in app.success]
    assert said.startswith("No lost runs. Silent runs are judged in ")
    assert said.endswith(" s: this app has only just reached the store, and a run may be silent because the store was out of reach a moment ago.")


def test_a_panic_in_a_rust_library_is_the_apology_not_a_half_drawn_page():
    """Polars' PanicException is a BaseException: a NUL in a column name made st.dataframe panic past the page's
    error handling, leaving it half drawn with no word."""

    def page():
        import streamlit as st
        from polars.exceptions import PanicException

        from ui.common import friendly_errors

        with friendly_errors():
            st.title("drawn")
            raise PanicException("called `Result::unwrap()` on an `Err` value: NulError")

    at = AppTest.from_function(page).run()

    assert not at.exception
    assert [error.value for error in at.error] == [
        "Something went wrong while drawing this page. The details are in the server log; reload to try again."
    ]
