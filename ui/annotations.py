"""Tags and a Markdown note on an experiment or a run: shown at the top of its page, edited in a fold."""

import streamlit as st

from core.entities import Target
from core.errors import NotFoundError, ValidationError, quoted
from core.presenters import safe_markdown
from ui.common import flash, fold, plain, show_flash, show_validation, store


def show_tags_and_note(tags: dict[str, str], note: str) -> None:
    """Tags as badges and the note rendered as Markdown, with no HTML from the user."""
    if tags:
        st.markdown(" ".join(f":gray-badge[{plain(key)}: {plain(value)}]" for key, value in sorted(tags.items())))
    if note:
        with st.container(border=True):
            st.markdown(safe_markdown(note))


def edit_tags_and_note(target: Target, target_id: int, tags: dict[str, str], note: str) -> None:
    """Add or change a tag, remove tags, write the note; each saves at once and reruns the page."""
    show_flash()
    section = fold("Edit tags and note", f"{target}_annotations_open", icon=":material/sell:")
    if not section.open:
        return
    with section:
        fields = (f"{target}_tag_key", f"{target}_tag_value")
        if st.session_state.pop(f"{target}_tag_saved", False):  # a saved tag empties the fields; a refused one keeps them
            st.session_state.update(dict.fromkeys(fields, ""))
        with st.form(f"{target}_tag", border=False):
            name, value, add = st.columns([3, 4, 2], vertical_alignment="bottom")
            key = name.text_input("Tag", placeholder="e.g. base", key=fields[0])
            text = value.text_input("Value", placeholder="e.g. llama", key=fields[1])
            if add.form_submit_button("Add or change", icon=":material/add:", key=f"{target}_add_tag"):
                saved = {f"{target}_tag_saved": True}
                _save(lambda: store().set_tags(target, target_id, {key: text}), f"Tag {quoted(key.strip())} saved.", saved)
        if tags:
            left, right = st.columns([7, 2], vertical_alignment="bottom")
            chosen = left.multiselect("Tags to remove", sorted(tags), key=f"{target}_tags_remove")
            if right.button("Remove", key=f"{target}_remove_tags", disabled=not chosen, icon=":material/delete:"):
                _save(lambda: store().remove_tags(target, target_id, chosen), f"Removed {', '.join(chosen)}.")
        written = st.text_area(
            "Note (Markdown)", value=note, key=f"{target}_note", height=150, help="Markdown only; HTML shows as text."
        )
        if st.button("Save note", key=f"{target}_save_note", icon=":material/save:"):
            _save(lambda: store().set_note(target, target_id, written), "Note saved." if written.strip() else "Note removed.")


def _save(action, message: str, remember: dict | None = None) -> None:
    """Do it, then say so after a rerun (with `remember` put in the session first); or say why not, inputs kept."""
    try:
        action()
    except ValidationError as error:
        show_validation(error)
    except NotFoundError as error:
        st.warning(plain(str(error)))
    else:
        st.session_state.update(remember or {})
        flash(message)
        st.rerun()
