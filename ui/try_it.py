"""The try-it box: type an input, get each adapter's answer. Loaded adapters are kept once per server (a few at
most) and all released when the machine runs short of memory. Answers are drawn as plain text."""

import logging

import polars as pl
import streamlit as st

from core.entities import Adapter
from core.errors import TuneDeckError, ValidationError
from jobs.inference import MAX_INPUT, Answerer, answer_within, cannot_answer, check_input, load_answerer, memory_short
from ui.common import data_table, friendly_errors, full_stop, plain, show_validation

KEEP_LOADED = 4  # adapters kept loaded per server
log = logging.getLogger("tunedeck.ui")


@st.cache_resource(max_entries=KEEP_LOADED, show_spinner=False)
def _answerer(path: str, base_model: str, checksum: str) -> Answerer:
    """One loaded adapter; the checksum keys a re-registered folder apart from the old one."""
    return load_answerer(path, base_model)


def answerer(adapter: Adapter) -> Answerer:
    if memory_short():
        _answerer.clear()
    return _answerer(adapter.path, adapter.base_model, adapter.checksum)


def try_box(adapters: dict[str, Adapter], key: str) -> None:
    """An input box and a button; the answers of the adapters (by label) below, one row each. Adapters that cannot
    answer here are named with the reason, before anyone types."""
    st.subheader("Try it")
    if not adapters:
        st.caption("No adapter to try yet: a run registers one when it completes.")
        return
    reasons = {label: cannot_answer(adapter.path, adapter.base_model) for label, adapter in adapters.items()}
    alike: dict[str, list[str]] = {}  # six runs on one missing base model: one line, not six
    for label, reason in reasons.items():
        if reason:
            alike.setdefault(reason, []).append(label)
    for reason, labels in alike.items():
        st.caption(plain(full_stop(f"{', '.join(labels)} cannot answer here: {reason}")))  # the labels as they are
    ready = {label: adapter for label, adapter in adapters.items() if not reasons[label]}
    if not ready:
        return
    # No max_chars: Streamlit drops a paste over it without a word; check_input says what the limit is.
    text = st.text_area(
        "Input", key=f"{key}_input", placeholder="e.g. the soup was cold and bland", help=f"Up to {MAX_INPUT:,} characters."
    )
    if not st.button("Answer", key=f"{key}_go", icon=":material/play_arrow:"):
        return
    try:
        check_input(text)  # before any adapter is loaded, which may take seconds
    except ValidationError as error:
        show_validation(error)
        return
    if len(ready) == 1:
        ((label, adapter),) = ready.items()
        with friendly_errors(), st.spinner(plain(f"Loading {adapter.base_model} with {label} and answering…")):
            single = _answer_row(answer_within(answerer(adapter), text))
            st.code(single["answer"], language="text", wrap_lines=True)
            if single["confidence"] is not None:
                st.caption(f"confidence {single['confidence']:.3f}")
            if single["decoding"]:
                st.caption(f"decoding: {single['decoding']}")
        return
    answers = []
    for label, adapter in ready.items():
        with st.spinner(plain(f"Loading {adapter.base_model} with {label} and answering…")):
            try:
                answers.append({"adapter": label, **_answer_row(answer_within(answerer(adapter), text))})
            except Exception as error:  # in its own row: which adapter failed, and the others' answers still shown
                if not isinstance(error, TuneDeckError):
                    log.exception("the try-it box failed on %s", label)
                why = error if isinstance(error, TuneDeckError) else "something went wrong; the details are in the server log"
                answers.append({"adapter": label, "answer": f"no answer: {why}", "confidence": None, "decoding": ""})
    data_table(pl.DataFrame(answers), key=f"{key}_answers")  # an adapter with no decoding settings: "–", not a blank


def _answer_row(answer) -> dict:
    settings = ", ".join(f"{name}={value}" for name, value in answer.settings.items())
    return {"answer": answer.text, "confidence": answer.confidence, "decoding": settings}
