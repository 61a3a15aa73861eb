"""Tags and notes on the run and experiment pages, through AppTest: add, change, remove, and notes shown safely."""

from tests.ui.test_pages import table_with, texts


def add_tag(app, target: str, key: str, value: str):
    app.text_input(key=f"{target}_tag_key").input(key)
    app.text_input(key=f"{target}_tag_value").input(value)
    return app.button(key=f"{target}_add_tag").click().run()


def test_a_tag_added_on_the_run_page_is_stored_shown_and_listed_in_the_runs_table(open_page, populated, app_store):
    app = open_page("pages/run.py", opened=("run_annotations_open",), run=str(populated["done"]))

    add_tag(app, "run", "base", "llama")

    assert app_store.get_run(populated["done"]).tags == {"base": "llama"}
    assert ":gray-badge[base: llama]" in texts(app)
    assert "Tag “base” saved." in texts(app)
    runs = table_with(open_page("pages/experiment.py", experiment=str(populated["experiment"])), "loss curve")
    assert runs.set_index("id").loc[populated["done"], "tags"] == "base=llama"


def test_a_tag_is_changed_by_adding_it_again_and_removed_from_the_fold(open_page, populated, app_store):
    app_store.set_tags("run", populated["done"], {"base": "llama", "seed": "1"})
    app = open_page("pages/run.py", opened=("run_annotations_open",), run=str(populated["done"]))

    add_tag(app, "run", "base", "mistral")
    assert app_store.get_run(populated["done"]).tags == {"base": "mistral", "seed": "1"}

    app.multiselect(key="run_tags_remove").set_value(["seed"]).run()
    app.button(key="run_remove_tags").click().run()
    assert app_store.get_run(populated["done"]).tags == {"base": "mistral"}


def test_a_bad_tag_name_is_explained_and_nothing_is_stored(open_page, populated, app_store):
    app = open_page("pages/run.py", opened=("run_annotations_open",), run=str(populated["done"]))

    add_tag(app, "run", "my<tag>", "x")

    assert "Tag name may only contain unaccented letters, digits, spaces and _ . - / : @." in texts(app)
    assert app_store.get_run(populated["done"]).tags == {}
    assert app.text_input(key="run_tag_key").value == "my<tag>"  # kept, to fix


def test_a_value_too_long_is_named_as_the_value_and_kept_then_a_saved_tag_empties_the_fields(open_page, populated):
    app = open_page("pages/run.py", opened=("run_annotations_open",), run=str(populated["done"]))

    add_tag(app, "run", "base", "x" * 1500)
    assert "Value of tag “base” is too long: at most 1,000 characters are allowed, and this one has 1,500." in texts(app)
    assert app.text_input(key="run_tag_value").value == "x" * 1500

    add_tag(app, "run", "base", "llama")
    assert (app.text_input(key="run_tag_key").value, app.text_input(key="run_tag_value").value) == ("", "")


def test_a_note_is_saved_and_rendered_as_markdown(open_page, populated, app_store):
    app = open_page("pages/run.py", opened=("run_annotations_open",), run=str(populated["done"]))

    app.text_area(key="run_note").input("## Why\n\nRank **16** beat rank 8.").run()
    app.button(key="run_save_note").click().run()

    assert app_store.get_run(populated["done"]).note == "## Why\n\nRank **16** beat rank 8."
    assert "## Why\n\nRank **16** beat rank 8." in [m.value for m in app.markdown]


def test_html_in_a_note_is_shown_as_text_never_as_html(open_page, populated, app_store):
    app_store.set_note(
        "run", populated["done"], 'Look <script>alert("x")</script><img src=x onerror=alert(1)> [y](javascript:alert(1))'
    )

    app = open_page("pages/run.py", opened=("run_annotations_open",), run=str(populated["done"]))

    note = next(m for m in app.markdown if "alert" in m.value)
    assert "<" not in note.value
    assert note.value.startswith("Look &lt;script>")
    assert "javascript:" not in note.value
    assert not any(m.proto.allow_html for m in app.markdown)


def test_an_experiment_s_tags_and_note_show_on_its_page_and_in_the_list(open_page, populated, app_store):
    app = open_page("pages/experiment.py", opened=("experiment_annotations_open",), experiment=str(populated["experiment"]))

    add_tag(app, "experiment", "team", "nlp")
    app.text_area(key="experiment_note").input("Baseline sweep for *sentiment*.").run()
    app.button(key="experiment_save_note").click().run()

    experiment = app_store.get_experiment(populated["experiment"])
    assert (experiment.tags, experiment.note) == ({"team": "nlp"}, "Baseline sweep for *sentiment*.")
    assert "Baseline sweep for *sentiment*." in [m.value for m in app.markdown]
    assert table_with(open_page("pages/experiments.py"), "best")["tags"].tolist() == ["team=nlp"]


def test_an_experiment_tag_is_searchable_on_its_runs(open_page, populated, app_store):
    app_store.set_tags("experiment", populated["experiment"], {"team": "nlp"})

    app = open_page("pages/runs.py", search="tags.team = nlp and status = completed")

    assert table_with(app, "experiment")["id"].tolist() == [populated["done"]]


def test_the_runs_page_shows_each_runs_own_tags_and_still_finds_runs_by_their_experiments(open_page, populated, app_store):
    app_store.set_tags("experiment", populated["experiment"], {"team": "nlp"})
    app_store.set_tags("run", populated["done"], {"base": "llama"})
    app = open_page("pages/runs.py")

    shown = table_with(app, "experiment").set_index("id")["tags"]
    assert shown[populated["done"]] == "base=llama" and shown[populated["failed"]] == "–"  # not the experiment's team=nlp

    app.text_input(key="search").input("tags.team = cv").run()
    assert "0 of 3 runs match" in texts(app)
    app.text_input(key="search").input("tags.team = nlp").run()
    assert "3 of 3 runs match" in texts(app)
