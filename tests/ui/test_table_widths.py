"""Text columns sharing a table's width: short ones whole, the widest cut to one width (no Streamlit needed)."""

import polars as pl

from ui.common import fitting_width, fitting_widths

ROOM = 590


def natural(text: str) -> int:
    return fitting_width([text], least=60)


def adapters(adapter: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "adapter": [adapter, "sentiment sweep"],
            "experiment": ["sentiment sweep (#1)", "sentiment sweep (#1)"],
            "aliases": ["", None],
            "mark": ["★ best · ⚠ diverged", "–"],
            "base model": ["tiny-base", "tiny-base"],
        }
    )


def test_columns_that_fit_get_the_width_of_their_longest_value_or_header():
    frame = adapters("sentiment sweep")

    widths = fitting_widths(frame, frame.columns, ROOM)

    assert widths["experiment"] == natural("sentiment sweep (#1)")  # whole: it was cut at 120 px
    assert widths["mark"] == natural("★ best · ⚠ diverged")
    assert widths["aliases"] == natural("aliases")  # its header, not 150 px of dashes
    assert widths["base model"] == natural("base model")
    assert sum(widths.values()) <= ROOM


def test_where_they_do_not_fit_the_widest_share_what_the_short_ones_leave():
    frame = adapters("llama-3-8b-instruct-lora-sentiment-rank-64-cosine-" * 2)

    widths = fitting_widths(frame, frame.columns, ROOM)

    assert widths["aliases"] == natural("aliases") and widths["base model"] == natural("base model")
    assert widths["adapter"] == widths["experiment"] == widths["mark"] < natural("sentiment sweep (#1)")
    assert ROOM - 3 < sum(widths.values()) <= ROOM  # whole pixels
