"""The Runs page, tags and notes, and export in headless Chromium: what an analyst sees and downloads.
Screenshots land in the folder printed under -s (TUNEDECK_SCREENSHOTS picks one)."""

import io
import re

import polars as pl

from core import open_store
from tests.browser import needs_chromium
from tests.browser.test_screens import (  # noqa: F401 (fixtures)
    WAIT_MS,
    browser,
    click_row,
    open_page,
    page,
    playwright,
    run_over,
    shots,
    team,
)

NOTE = 'Rank 16 **wins**. <script>document.title = "owned"</script><img src=x onerror="document.title = \'owned\'">'

pytestmark = needs_chromium()  # its fixtures come from test_screens, its marks do not


def test_the_runs_page_finds_runs_across_experiments_and_explains_a_bad_query(team, page, shots):  # noqa: F811
    url, _, ids = team
    open_page(page, f"{url}/runs?search=params.learning_rate%20%3E%3D%200.01", "Runs", ready="runs match")
    assert re.search(r"\d+ of \d+ runs match", page.locator("[data-testid=stMain]").inner_text())
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(800)  # let the grid paint
    page.screenshot(path=str(shots / "20-runs-search.png"))

    box = page.get_by_role("textbox", name="Search runs")
    box.fill("parms.learning_rate < 0.01")
    box.press("Enter")

    error = page.get_by_test_id("stAlertContentError")
    error.first.wait_for(timeout=WAIT_MS)
    shown = error.first.inner_text().replace("\u200b", "")  # the zero-width space that keeps a colon from starting a :shortcode:
    assert shown.endswith("Unknown field parms.learning_rate at column 1: did you mean params.learning_rate?")
    page.screenshot(path=str(shots / "21-runs-search-error.png"))


def test_back_from_a_run_opened_on_the_runs_page_shows_the_search_as_it_was(team, page):  # noqa: F811
    """The Runs page kept no URL state: Back to the history entry switch_page added (the Runs page's path with
    ?run=N) showed every run, with an empty search box."""
    url, _, _ = team
    open_page(page, f"{url}/runs?search=params.learning_rate%20%3E%3D%200.01", "Runs", ready="runs match")
    matched = page.get_by_text(re.compile(r"^\d+ of \d+ runs match")).first.inner_text()
    run_over(page)

    click_row(page, page.get_by_test_id("stDataFrame").filter(visible=True).first, x=80)  # a run's name
    page.wait_for_url(re.compile(r"/run\?run=\d+$"), timeout=WAIT_MS)
    page.get_by_role("heading", name=re.compile(r"\(#\d+\)$")).first.wait_for(timeout=WAIT_MS)
    run_over(page)
    page.go_back()

    page.get_by_role("heading", name="Runs").wait_for(timeout=WAIT_MS)
    page.wait_for_url(re.compile(r"/runs\?search=params\.learning_rate"), timeout=WAIT_MS)
    playwright.expect(page.get_by_role("textbox", name="Search runs")).to_have_value("params.learning_rate >= 0.01", timeout=WAIT_MS)
    playwright.expect(page.get_by_text(matched).first).to_be_visible(timeout=WAIT_MS)

def test_a_note_with_html_is_shown_as_text_on_the_run_page(team, page, shots):  # noqa: F811
    url, data_dir, ids = team
    store = open_store(data_dir)
    store.set_tags("run", ids["diverged"], {"base": "llama", "seed": 3})
    store.set_note("run", ids["diverged"], NOTE)

    open_page(page, f"{url}/run?run={ids['diverged']}", f"run-{ids['diverged']}", ready="step 1,000 of 1,000")

    main = page.locator("[data-testid=stMain]")
    assert main.get_by_text("<script>", exact=False).first.is_visible()  # shown as typed
    assert main.locator("strong", has_text="wins").count() == 1  # the Markdown is rendered
    assert main.locator("script, img[src=x]").count() == 0
    assert page.title() != "owned"
    assert main.get_by_text("base: llama").first.is_visible()
    page.screenshot(path=str(shots / "22-run-tags-and-note.png"))


def test_the_runs_table_downloads_as_csv_that_polars_reads(team, page):  # noqa: F811
    url, _, ids = team
    # Click once the run that drew the buttons has ended: a click while it ran was lost once under load (each page
    # run renews the ids by which the buttons' files are handed out, and nothing downloaded).
    # The click was lost under the full suite's load even so, three times running in one session (why was not
    # found: the page had no run going by its status widget), so each new try starts from a fresh page load, a new
    # session with its own ids; a download that never comes still fails the test.
    for attempt in range(3):
        open_page(page, f"{url}/runs", "Runs", ready="runs match")
        page.get_by_text("Export", exact=True).first.click()
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)
        try:
            with page.expect_download(timeout=WAIT_MS / 3) as download:
                page.get_by_role("button", name=re.compile("Runs table \\(CSV\\)")).click()
            break
        except playwright.TimeoutError:
            if attempt == 2:
                raise

    table = pl.read_csv(io.BytesIO(open(download.value.path(), "rb").read()))
    assert set(ids["runs"]) <= set(table["run_id"])
    assert {"params.learning_rate", "metrics.loss.min", "metrics.loss.max", "metrics.loss.last"} <= set(table.columns)
