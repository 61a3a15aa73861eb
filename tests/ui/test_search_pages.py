"""The search box on the Runs page and the experiment page, through AppTest."""

from tests.apptest import as_shown
from tests.ui.conftest import SAMPLE
from tests.ui.test_pages import table_with, texts


def results(app):
    return table_with(app, "experiment")


def test_the_runs_page_lists_every_run_of_every_live_experiment(open_page, populated, app_store):
    other = app_store.create_experiment({"name": "summaries", "dataset": SAMPLE})
    extra = app_store.create_run(other, {"learning_rate": 0.2})

    app = open_page("pages/runs.py")

    assert app.title[0].value == "Runs"
    table = results(app)
    assert set(table["id"]) == {populated["done"], populated["failed"], populated["queued"], extra}
    assert "4 of 4 runs match. Click a run to open it." in texts(app)


def test_a_search_finds_runs_across_experiments_and_shows_the_columns_it_names(open_page, populated, app_store):
    other = app_store.create_experiment({"name": "summaries", "dataset": SAMPLE})
    app_store.create_run(other, {"learning_rate": 0.01})
    app = open_page("pages/runs.py")

    app.text_input(key="search").input(
        'params.learning_rate < 0.07 and metrics.eval_loss.min < 0.38 and experiment contains "SENTIMENT"'
    ).run()

    table = results(app)
    assert table["id"].tolist() == [populated["done"]]
    assert table["params.learning_rate"].tolist() == [0.01]
    assert table["metrics.eval_loss.min"].tolist() == [0.35]
    assert "1 of 4 runs match" in texts(app)


def test_a_search_that_matches_nothing_says_so(open_page, populated):
    app = open_page("pages/runs.py")

    app.text_input(key="search").input('name = "no such run"').run()

    assert not app.error
    assert "0 of 3 runs match. Click a run to open it." in texts(app)
    assert results(app).empty


def test_a_search_in_the_link_opens_already_applied(open_page, populated):
    app = open_page("pages/runs.py", search="status = failed")

    assert results(app)["id"].tolist() == [populated["failed"]]


def test_an_unknown_field_is_explained_with_a_suggestion_and_every_run_stays(open_page, populated):
    app = open_page("pages/runs.py")

    app.text_input(key="search").input("parms.learning_rate < 0.05").run()

    assert [as_shown(e.value) for e in app.error] == [
        "Unknown field `parms.learning_rate` at column 1: did you mean `params.learning_rate`?"
    ]
    assert len(results(app)) == 3
    assert "The search above has an error, so nothing is filtered: all 3 runs." in texts(app)  # not "3 of 3 match"
    assert not any("match" in caption.value for caption in app.caption)


def test_a_search_nested_past_reason_is_explained_not_a_crash(open_page, populated):
    app = open_page("pages/runs.py")

    app.text_input(key="search").input("(" * 200 + "status = completed" + ")" * 200).run()

    assert "The search nests `(` and `not` more than 50 deep" in texts(app)
    assert len(results(app)) == 3


def test_runs_of_several_experiments_are_told_apart_by_their_id(open_page, populated, app_store):
    other = app_store.create_experiment({"name": "summaries", "dataset": SAMPLE})
    extra = app_store.create_run(other, {"learning_rate": 0.2})

    app = open_page("pages/runs.py")

    assert f"{app_store.get_run(extra).name} (#{extra})" in results(app)["run"].tolist()


def test_a_broken_query_points_at_the_token(open_page, populated):
    app = open_page("pages/runs.py")

    app.text_input(key="search").input("(status = completed or status = failed").run()

    assert "The `(` at column 1 is never closed" in texts(app)


def test_the_runs_page_on_an_empty_store_says_how_to_start(open_page):
    app = open_page("pages/runs.py")

    assert "No runs yet" in texts(app)


def test_the_experiment_page_searches_its_own_runs_by_tag(open_page, populated, app_store):
    app_store.set_tags("run", populated["failed"], {"base": "llama"})
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]))

    app.text_input(key="run_filter").input('tags.base = "llama" or status = queued').run()

    assert table_with(app, "loss curve")["id"].tolist() == [populated["queued"], populated["failed"]]
    assert "2 of 3 runs match." in texts(app)


def download_buttons(app) -> dict[str, bool]:
    """Each download button's label and whether it can be clicked."""
    return {button.proto.label: not button.proto.disabled for button in app.get("download_button")}


def test_the_runs_page_offers_the_runs_table_and_asks_to_tick_runs_for_curves(open_page, populated):
    app = open_page("pages/runs.py", opened=("export_open",))

    assert download_buttons(app) == {
        "Runs table (CSV)": True,
        "Runs table (Parquet)": True,
        "Curves of 0 runs (CSV)": False,
        "Curves of 0 runs (Parquet)": False,
    }
    assert "Tick runs in the table to export their curves." in texts(app)
    assert "The runs table holds the 3 runs shown" in texts(app)


def test_the_experiment_page_exports_the_curves_of_the_runs_chosen_to_compare(open_page, populated):
    app = open_page("pages/experiment.py", opened=("export_open",), experiment=str(populated["experiment"]))

    app.multiselect(key="compare_pick").set_value([populated["done"], populated["failed"]]).run()

    assert download_buttons(app)["Curves of 2 runs (CSV)"] is True
