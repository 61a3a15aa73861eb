"""The New run form starts grids and random searches (counted before starting, capped, all-or-nothing), and
"Clone" on a run fills the form with that run's settings."""

import pytest

from core.runs import parse_config
from tests.apptest import as_shown
from tests.ui.test_pages import table_with, texts


def sweep(app, mode: str, lines: str):
    app.radio(key="sweep_mode").set_value(mode).run()
    app.text_area(key="sweep_lines").input(lines).run()
    return app


def press(app, label: str):
    labels = [button.label for button in app.button]
    assert label in labels, labels
    app.button[labels.index(label)].click().run()
    return app


def test_a_grid_shows_its_run_count_and_starts_every_combination(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    sweep(app, "Grid", "learning_rate = 1e-3, 1e-2\nlora_rank = 4, 8, 16")

    assert "This grid starts 2 × 3 = 6 runs: every combination of learning_rate, lora_rank." in texts(app)
    press(app, "Start 6 runs")
    newest = app_store.list_runs(populated["experiment"])[:6]
    assert sorted((r.config["learning_rate"], r.config["lora_rank"]) for r in newest) == [
        (lr, rank) for lr in (1e-3, 1e-2) for rank in (4, 8, 16)
    ]
    assert "Started 6 runs:" in texts(app)


def start_button(app, label: str):
    return app.button[[b.label for b in app.button].index(label)]


def test_a_grid_over_the_cap_is_explained_before_starting_and_starts_nothing(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    sweep(app, "Grid", "seed = " + ", ".join(map(str, range(10))) + "\nlora_rank = 1, 2, 4, 8, 16, 32")

    assert "This grid makes 10 × 6 = 60 runs, and a sweep starts at most 50 at once" in texts(app)
    assert start_button(app, "Start the sweep").disabled  # until the lines are fixed
    assert len(app_store.list_runs(populated["experiment"])) == 3


def test_a_grid_with_one_invalid_combination_starts_nothing(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))

    sweep(app, "Grid", "learning_rate = 1e-3, 50")

    assert "Line 1 ('learning_rate = 1e-3, 50'): learning_rate must be at most 10, not 50." in texts(app)  # said first
    assert start_button(app, "Start the sweep").disabled
    assert len(app_store.list_runs(populated["experiment"])) == 3


def test_a_random_search_starts_the_count_asked_for_with_its_seed(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    sweep(app, "Random search", "learning_rate = 1e-4 .. 1e-2 log\nlora_rank = 4, 8")

    app.text_input(key="sweep_count").input("4").run()

    assert "This random search starts 4 runs, drawing learning_rate, lora_rank." in texts(app)
    press(app, "Start 4 runs")
    newest = app_store.list_runs(populated["experiment"])[:4]
    assert len({r.id for r in newest}) == 4 and all(1e-4 <= r.config["learning_rate"] <= 1e-2 for r in newest)
    assert {r.config["lora_rank"] for r in newest} <= {4, 8}


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        ("sweep_count", "500", "Runs must be a whole number from 1 to 50, not '500'."),
        ("sweep_count", "ten", "Runs must be a whole number from 1 to 50, not 'ten'."),
        ("sweep_seed", "9" * 40, f"Random seed must be a whole number from 0 to {2**63 - 1:,}, not '{'9' * 30}...'."),
    ],
)
def test_a_random_search_count_or_seed_out_of_range_is_refused_and_starts_nothing(open_page, populated, app_store, field, typed, said):
    """A number box kept showing 500 while the sweep started the last good count, 10."""
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]))
    sweep(app, "Random search", "learning_rate = 1e-4 .. 1e-2 log")

    app.text_input(key=field).input(typed).run()

    assert said in texts(app)
    assert start_button(app, "Start the sweep").disabled


def test_clone_on_a_run_page_links_to_the_form_with_that_run(open_page, populated):
    app = open_page("pages/run.py", run=str(populated["done"]))

    [link] = [link for link in app.get("page_link") if link.label.startswith("Clone")]

    assert link.proto.page.endswith("experiment")
    assert f"clone={populated['done']}" in link.proto.query_string


def test_a_cloned_run_fills_the_form_and_starts_with_its_settings(open_page, populated, app_store):
    source = app_store.create_run(
        populated["experiment"], {"trainer": "builtin", "learning_rate": 0.003, "max_steps": 40, "lora_rank": 4, "seed": 7}
    )
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]), clone=str(source))

    prefix = f"clone{source}_builtin"
    assert app.text_input(key=f"{prefix}_learning_rate").value == "0.003"
    assert app.text_input(key=f"{prefix}_lora_rank").value == "4"
    assert app.text_input(key=f"{prefix}_seed").value == "7"
    assert app.text_input(key=f"{prefix}_epochs").value == ""
    press(app, "Start")

    started = app_store.list_runs(populated["experiment"])[0]
    assert started.id != source
    assert started.config == parse_config(app_store.get_run(source).config).stored()


@pytest.mark.parametrize("clone", ["999", "abc"])
def test_a_clone_link_to_a_run_that_is_gone_or_mistyped_keeps_the_page_and_starts_the_form_from_the_defaults(
    open_page, populated, clone
):
    app = open_page("pages/experiment.py", opened=("new_run_open",), experiment=str(populated["experiment"]), clone=clone)

    [warning] = [as_shown(w.value) for w in app.warning]
    assert warning.endswith("There is nothing to clone: the New run form starts from the defaults.")
    assert table_with(app, "run")["run"].tolist()  # the runs table is still there
    assert app.selectbox(key="cfg_trainer").value == "builtin"


def test_starting_from_the_defaults_instead_of_a_clone_keeps_the_form_open_on_the_defaults(open_page, populated):
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]), clone=str(populated["done"]))

    app.button(key="unclone").click().run()

    assert "clone" not in app.query_params
    assert app.text_input(key="cfg_builtin_epochs").value == "3"  # the form, open, with the defaults


def test_a_cloned_peft_run_opens_the_form_on_the_peft_trainer(open_page, populated, app_store):
    source = app_store.create_run(populated["experiment"], {"trainer": "peft", "epochs": 2, "task": "classification"})

    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]), clone=str(source))

    assert app.selectbox(key=f"clone{source}_trainer").value == "peft"
    assert app.selectbox(key=f"clone{source}_peft_task").value == "classification"


def test_a_run_logged_by_a_script_clones_into_the_defaults_and_says_which_params_it_left_out(
    open_page, populated, app_store
):
    source = app_store.begin_run(populated["experiment"], {"lr": 0.01, "seed": 3}, worker="laptop:1")
    app = open_page("pages/experiment.py", experiment=str(populated["experiment"]), clone=str(source))

    [note] = [info.value.replace("\\", "") for info in app.info if "logged by a script" in info.value]  # markdown-escaped
    assert "starts from the defaults, with the settings it shares with them (seed)" in note
    assert "Its params lr are not settings a TuneDeck trainer reads." in note
    prefix = f"clone{source}_builtin"
    assert app.text_input(key=f"{prefix}_seed").value == "3"
    assert app.text_input(key=f"{prefix}_epochs").value != ""  # a length, so Start can start it
    press(app, "Start")
    assert "Started 1 run:" in texts(app)
