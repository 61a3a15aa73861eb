"""The adapter registry, and one adapter with its files and lineage (experiment → run → adapter)."""

import streamlit as st

from core.artifacts import adapter_files
from core.presenters import adapters_frame, format_size
from ui.common import friendly_errors, plain, query_id, store, through_app

through_app()


def registry() -> None:
    st.title("Adapters")
    adapters = store().list_adapters()
    if not adapters:
        st.info("No adapters yet: a run that completes registers the adapter it trained.")
        return
    runs = {run.id: run for run in store().get_runs(sorted({a.run_id for a in adapters}))}
    st.dataframe(
        adapters_frame(adapters, runs),
        hide_index=True,
        column_order=["open", "adapter", "version", "base model", "size", "source run", "eval_loss", "eval_accuracy", "created"],
        column_config={
            "open": st.column_config.LinkColumn("", display_text="Open", width="small"),
            "source run": st.column_config.LinkColumn("source run", display_text=r"run=(\d+)"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        },
    )


def detail(adapter_id: int) -> None:
    adapter = store().get_adapter(adapter_id)
    run = store().get_run(adapter.run_id)
    experiment = store().get_experiment(adapter.experiment_id)
    st.title(plain(f"{adapter.name} v{adapter.version}"))
    st.page_link("pages/adapters.py", label="All adapters", icon=":material/arrow_back:")
    st.subheader("Lineage")
    lineage = st.columns(3)
    lineage[0].page_link(
        "pages/experiment.py", label=f"Experiment: {experiment.name}", query_params={"experiment": experiment.id}
    )
    lineage[1].page_link("pages/run.py", label=f"Run: {run.name} (#{run.id})", query_params={"run": run.id})
    lineage[2].markdown(f"Adapter: **v{adapter.version}**")
    cells = st.columns(3)
    cells[0].metric("base model", adapter.base_model)
    cells[1].metric("size", format_size(adapter.size_bytes))
    cells[2].metric("created", f"{adapter.created_at:%Y-%m-%d %H:%M}")
    st.caption(f"Checksum `{adapter.checksum}`")
    st.code(adapter.path, language="text")
    st.subheader("Files")
    files = adapter_files(adapter.path)
    if files.height:
        st.dataframe(files, hide_index=True)
    else:
        st.warning("The adapter's folder is no longer on disk; its registry entry is kept for audit.")


with friendly_errors():
    adapter_id = query_id("adapter", "adapter")
    with store().reading():
        registry() if adapter_id is None else detail(adapter_id)
