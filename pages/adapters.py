"""The adapter registry (each experiment's best adapter marked), and one adapter with its files and lineage."""

import streamlit as st

from core.aliases import checked_alias
from core.artifacts import adapter_zip, artifact_store, zip_name
from core.divergence import WHY_DIVERGED, find_diverged
from core.errors import ConflictError, NotFoundError, ValidationError
from core.presenters import (
    adapters_frame,
    alias_moved,
    aliases_by_adapter,
    best_adapters,
    experiment_link_label,
    format_size,
    plural,
)
from ui.common import (
    DATE_WIDTH,
    TABLE_WIDTH,
    data_table,
    fitting_widths,
    flash,
    fresh,
    friendly_errors,
    live,
    open_on_select,
    plain,
    query_id,
    rows_high,
    sentence,
    settings,
    show_flash,
    show_validation,
    store,
    through_app,
)
from ui.try_it import try_box

through_app()

TEXT = ["adapter", "experiment", "aliases", "mark", "base model"]
TEXT_ROOM = TABLE_WIDTH - 60 - 60 - 190 - DATE_WIDTH  # less version, run, the two metrics and created


def registry(state: tuple) -> bool:
    """The list from the adapters and aliases in `state`, or read again where a click redraws only this part."""
    adapters, aliases = fresh(state, registry_state)
    if not adapters:
        st.info("No adapters yet: a run that completes registers the adapter it trained.")
        return False
    with store().reading():
        runs = {run.id: run for run in store().get_runs(sorted({a.run_id for a in adapters}))}
        experiments = {e_id: store().get_experiment(e_id) for e_id in sorted({a.experiment_id for a in adapters})}
        diverged = find_diverged(store(), list(runs.values()))
    frame = adapters_frame(adapters, runs, best_adapters(adapters, experiments), diverged, aliases, experiments)
    st.caption(
        f"{plural(len(adapters), 'adapter')} · ★ marks each experiment's best adapter by its primary metric; "
        "⚠ an adapter trained by a run that diverged. Click a row to open the adapter."
    )
    table = data_table(
        frame,
        on_select="rerun",
        selection_mode="single-cell",
        key="adapters_table",
        height=rows_high(frame.height),
        column_order=[
            "adapter",
            "version",
            "experiment",
            "aliases",
            "mark",
            "base model",
            "run",
            "eval_loss",
            "eval_accuracy",
            "created",
        ],
        column_config={
            **{name: st.column_config.TextColumn(name, width=width) for name, width in fitting_widths(frame, TEXT, TEXT_ROOM).items()},
            "version": st.column_config.TextColumn("version", width=60),
            "run": st.column_config.TextColumn("run", width=60),
            "created": st.column_config.DatetimeColumn("created", format="MM-DD HH:mm", width=DATE_WIDTH),
        },
    )
    open_on_select(table, frame, "pages/adapters.py", "adapter")
    return False


def registry_state() -> tuple:
    """What an idle registry is checked against: its adapters and their aliases. A run that completes, or an alias
    moved from another tab or a script, shows without a reload."""
    with store().reading():
        return store().list_adapters(), store().list_adapter_aliases()


def detail(adapter_id: int) -> None:
    with store().reading():  # the reads only: the try-it box below may hold the page for a minute
        adapter = store().get_adapter(adapter_id)
        run = store().get_run(adapter.run_id)
        experiment = store().get_experiment(adapter.experiment_id)
        diverged = find_diverged(store(), [run])
    st.title(plain(f"{adapter.name} v{adapter.version}"))
    if adapter.id in best_adapters([adapter], {experiment.id: experiment}):
        st.badge(f"best of {plain(experiment.name)} by {experiment.primary_metric}", icon=":material/star:", color="green")
    if diverged:
        st.badge("diverged", icon=":material/warning:", color="red")
        st.warning(f"The run that trained this adapter diverged: {WHY_DIVERGED}.")
    if st.button("All adapters", icon=":material/arrow_back:", type="tertiary", key="all_adapters"):
        del st.query_params["adapter"]  # a link to this same page kept ?adapter=, so the list's clicks reopened this one
        st.rerun()
    st.subheader("Lineage")
    lineage = st.columns(3, vertical_alignment="center")  # the sidebar's icons: the two links read as links
    lineage[0].page_link(
        "pages/experiment.py",
        label=plain(experiment_link_label(experiment)),
        query_params={"experiment": experiment.id},
        icon=":material/folder_open:",
    )
    lineage[1].page_link(
        "pages/run.py", label=f"Run: {plain(run.name)} (#{run.id})", query_params={"run": run.id}, icon=":material/monitoring:"
    )
    lineage[2].markdown(f":small[:material/inventory_2: Adapter: **v{adapter.version}**]")
    cells = st.columns(3)
    cells[0].metric("size", format_size(adapter.size_bytes))
    cells[1].metric("created", f"{adapter.created_at:%Y-%m-%d %H:%M}")
    st.markdown(f"**Base model** {plain(adapter.base_model)}")  # whole: a metric tile cut 'meta-llama/Llama…'
    st.caption(f"Checksum `{adapter.checksum}`")
    st.code(adapter.path, language="text")
    aliases_section(adapter)
    st.subheader("Files")
    artifacts = artifact_store(settings())  # where every machine finds adapters: listed and zipped through it
    files = artifacts.files(adapter.path)
    if files.height:
        st.download_button(
            "Download as zip",
            data=lambda: adapter_zip(adapter, artifacts),
            file_name=zip_name(adapter),
            mime="application/zip",
            on_click="ignore",
            icon=":material/download:",
            key="download_zip",
        )
        st.dataframe(files, hide_index=True)
    else:
        st.warning("The adapter's folder is no longer on disk; its registry entry is kept for audit.")
    try_box({f"{adapter.name} v{adapter.version}": adapter}, key="try")


def aliases_section(adapter) -> None:
    """This version's aliases, the name's others, and moving one here: each change is one store operation."""
    st.subheader("Aliases")
    show_flash()
    of_name = store().list_adapter_aliases(adapter.name)
    mine = aliases_by_adapter(of_name).get(adapter.id, [])
    elsewhere = [f"{a.alias} → v{a.version}" for a in of_name if a.adapter_id != adapter.id]
    st.markdown(" ".join(f":green-badge[{alias}]" for alias in mine) or "This version has no alias.")
    if elsewhere:
        st.caption(f"Other versions of {plain(adapter.name)}: {', '.join(elsewhere)}")
    reference = f"{adapter.name}@{mine[0] if mine else adapter.version}"  # one that resolves to this version today
    st.code(f"from core import tracking\ntracking.resolve_adapter({reference!r}).path", language="python")
    left, right = st.columns(2, vertical_alignment="bottom")
    with left.form("set_alias", border=False):
        alias = st.text_input("Alias", placeholder="production, candidate ...", key="alias_name")
        if st.form_submit_button("Point it at this version", icon=":material/sell:"):
            try:
                kept = checked_alias(alias)  # as the registry keeps it: Production is production
                before = {a.alias: a.version for a in of_name}.get(kept)
                store().set_adapter_alias(adapter.id, alias)
            except ValidationError as error:
                show_validation(error)
            else:
                flash(alias_moved(kept, adapter.name, before, adapter.version))
                st.rerun()
    if mine:
        gone = right.selectbox("Remove an alias", mine, key="alias_remove")
        # A callback with the alias as drawn: the click is handled even if the alias has gone from this version
        # since, and never removes another alias that the redrawn list would have put in its place.
        right.button(
            "Remove",
            key="alias_remove_button",
            icon=":material/delete:",
            on_click=remove_alias,
            args=(adapter.name, gone, adapter.version),
        )


def remove_alias(name: str, alias: str, version: int) -> None:
    """Only from this version: someone may have moved or removed it since the page was drawn."""
    try:
        store().remove_adapter_alias(name, alias, version=version)
    except (NotFoundError, ConflictError) as error:
        flash(sentence(str(error)), warning=True)
    else:
        flash(f"Removed {name}@{alias}.")


with friendly_errors(back=("pages/adapters.py", "All adapters")):
    adapter_id = query_id("adapter", "adapter")
    if adapter_id is None:
        st.title("Adapters")
        seen = registry_state()
        live(False, lambda: registry(seen), idle=registry_state, seen=seen)
    else:
        detail(adapter_id)
