"""The adapter page sets, moves and removes aliases; the registry lists them; the adapter downloads as a zip."""

from tests.ui.test_pages import table_with, texts


def set_alias(app, alias: str):
    app.text_input(key="alias_name").input(alias)
    app.button[[b.label for b in app.button].index("Point it at this version")].click().run()
    return app


def snippet(app) -> str:
    return next(code.value for code in app.code if "resolve_adapter" in code.value)


def test_an_alias_set_on_the_adapter_page_shows_in_the_registry(open_page, populated, app_store):
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))
    assert "resolve_adapter('sentiment LoRA@1')" in snippet(app)  # no alias yet: one that resolves, not @production

    set_alias(app, "production")

    assert "sentiment LoRA@production now points at v1." in texts(app)
    assert app_store.resolve_adapter("sentiment LoRA@production").id == populated["adapter"]
    assert "resolve_adapter('sentiment LoRA@production')" in snippet(app)
    registry = open_page("pages/adapters.py")
    assert table_with(registry, "aliases")["aliases"].tolist() == ["production"]


def test_moving_an_alias_to_this_version_says_where_it_came_from(open_page, populated, app_store):
    first, second = populated["adapter"], second_version(app_store, populated)
    app_store.set_adapter_alias(first, "production")
    app = open_page("pages/adapters.py", adapter=str(second))

    set_alias(app, "production")

    assert "sentiment LoRA@production moved from v1 to v2." in texts(app)
    assert [(a.alias, a.version) for a in app_store.list_adapter_aliases()] == [("production", 2)]


def test_a_bad_alias_is_a_message_and_sets_nothing(open_page, populated, app_store):
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))

    set_alias(app, "latest")

    assert "“latest” always means the newest version" in texts(app)
    assert app_store.list_adapter_aliases() == []


def test_an_empty_alias_is_said_to_be_empty_and_one_in_capitals_is_confirmed_as_kept(open_page, populated, app_store):
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))

    set_alias(app, "  ")
    assert "Alias must not be empty." in texts(app)

    set_alias(app, "Production")
    assert "sentiment LoRA@production now points at v1." in texts(app)  # as kept: one alias whatever its case


def test_an_alias_is_removed_from_the_adapter_page(open_page, populated, app_store):
    app_store.set_adapter_alias(populated["adapter"], "candidate")
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))

    app.button(key="alias_remove_button").click().run()

    assert "Removed sentiment LoRA@candidate." in texts(app)
    assert app_store.list_adapter_aliases() == []


def second_version(app_store, populated) -> int:
    run_id = app_store.create_run(populated["experiment"], {"learning_rate": 0.02, "epochs": 1})
    app_store.mark_running(run_id, worker="host:1")
    first = app_store.get_adapter(populated["adapter"])
    return app_store.complete_run(run_id, first.model_dump(include={"path", "base_model", "size_bytes", "checksum"})).id


def test_removing_an_alias_someone_moved_since_the_page_was_drawn_leaves_it_where_it_is(open_page, populated, app_store):
    """The click was lost, or it removed the alias the redrawn list put in the chosen one's place (candidate)."""
    app_store.set_adapter_alias(populated["adapter"], "candidate")
    app_store.set_adapter_alias(populated["adapter"], "production")
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))
    app.selectbox(key="alias_remove").set_value("production").run()
    app_store.set_adapter_alias(second_version(app_store, populated), "production")  # another analyst, meanwhile

    app.button(key="alias_remove_button").click().run()

    assert "The alias sentiment LoRA@production points at v2 now, not v1; nothing was removed." in texts(app)
    assert [(a.alias, a.version) for a in app_store.list_adapter_aliases()] == [("candidate", 1), ("production", 2)]


def test_removing_an_alias_someone_removed_already_says_so(open_page, populated, app_store):
    app_store.set_adapter_alias(populated["adapter"], "candidate")
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))
    app_store.remove_adapter_alias("sentiment LoRA", "candidate")

    app.button(key="alias_remove_button").click().run()

    assert "Adapter “sentiment LoRA” has no alias “candidate”; nothing was removed." in texts(app)
    assert not [message for message in app.success if "Removed" in message.value]


def test_the_adapter_page_offers_its_folder_as_a_zip(open_page, populated):
    app = open_page("pages/adapters.py", adapter=str(populated["adapter"]))

    [download] = app.get("download_button")

    assert download.proto.label == "Download as zip"
