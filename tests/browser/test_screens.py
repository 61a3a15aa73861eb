"""What an analyst sees, in headless Chromium at 1440 x 900 on a populated store: live pages, charts that
survive a diverged run, same-tab navigation, deep links. Screenshots of every page land in the folder
printed under -s (TUNEDECK_SCREENSHOTS picks one)."""

import io
import os
import re
import tempfile
import time
from pathlib import Path

import pytest

from core import open_store
from core.presenters import plural
from core.writer import MetricWriter
from tests.browser import needs_chromium
from tests.browser.seed import PALETTE_OF_NORMAL_RUNS, SAMPLE, finish_live_run, seed
from tests.optional import require
from tests.servers import launch_chromium, start_app, stop
from ui.common import REFRESH_SECONDS

require("playwright", install="pip install -r requirements.txt")
from PIL import Image
from playwright import sync_api as playwright

pytestmark = needs_chromium()

# the metric panels, not the hyperparameter chart above them (its container carries its key as a class)
CURVES = '.stElementContainer:not([class*="st-key-hp_chart"]) [data-testid=stVegaLiteChart]'
WAIT_MS = 90_000  # a shared 2-core machine can be slow; nothing here times the app
NOT_DRAWN = 10_000
IDLE_CHECK = 2  # seconds between an idle page's checks, for the app on the long names' store (10 by default)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("team")
    ids = seed(data_dir)
    process, url = start_app(data_dir / "streamlit.log", TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0")
    yield url, data_dir, ids
    stop(process)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        chromium = launch_chromium(driver)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(WAIT_MS)  # clicks too: an option list can take a while to open on a busy machine
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("TUNEDECK_SCREENSHOTS") or tempfile.mkdtemp(prefix="tunedeck-screens-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def open_page(page, url: str, heading: str, charts: int = 0, ready: str | None = None) -> None:
    """Go to a URL and wait until its heading, a text that comes late (`ready`), its charts and tables are drawn."""
    page.goto(url)
    title = page.get_by_role("heading", name=heading).first
    title.wait_for(timeout=WAIT_MS)
    if ready:
        page.get_by_text(ready).first.wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => !document.querySelector('[data-testid=stSkeleton]')", timeout=WAIT_MS)
    for index in range(charts):  # a chart draws once it is scrolled into view
        chart = page.locator(CURVES).nth(index)
        chart.scroll_into_view_if_needed(timeout=WAIT_MS)
        chart.locator(".marks").wait_for(timeout=WAIT_MS)  # a canvas, or an svg
    title.scroll_into_view_if_needed()
    page.wait_for_timeout(400)  # let the last canvas paint


def whole_page_shot(page, path: Path) -> None:
    """The page from top to bottom at 1440 px wide: the app scrolls inside its main area, which a full-page shot of
    the document does not show, so the window is made as tall as that area for the shot."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": min(height, 12_000)})
    for chart in page.locator(CURVES).all():  # charts lower down draw once they are in view: now they all are
        chart.locator(".marks").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 900})


def pick(page, label: str, option: str, tries: int = 5, widget: str = "stSelectbox") -> None:
    """Choose an option of a select box (or add one to a multiselect: widget="stMultiSelect"). A rerun still drawing
    the page (a busy machine) redraws the box and closes the list it just opened: then it is opened again."""
    for attempt in range(tries):
        page.get_by_test_id(widget).filter(has_text=label).click()
        choice = page.get_by_role("option", name=re.compile(re.escape(option)))
        try:
            choice.click(timeout=WAIT_MS // tries)  # a redraw may detach the option between finding and clicking it
        except playwright.TimeoutError:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
            continue
        return


def mark_document(page) -> None:
    """A flag on this document: it survives in-app navigation and reruns, and is gone after any reload."""
    page.evaluate("() => { window.__sameDocument = true }")


def same_document(page) -> bool:
    return page.evaluate("() => window.__sameDocument === true")


def test_every_page_is_drawn_at_1440_and_opens_by_its_own_url(team, page, shots):
    url, _, ids = team
    runs = ",".join(map(str, ids["runs"]))
    pages = [
        ("experiments", "/experiments", "Experiments", 0, "3 experiments · page 1 of 1"),
        ("experiment", f"/experiment?experiment={ids['sweep']}", "sentiment sweep", 2, "Runs (6)"),
        ("run", f"/run?run={ids['diverged']}", f"run-{ids['diverged']}", 3, "step 1,000 of 1,000"),
        ("compare", f"/compare?runs={runs}", "Compare runs", 5, "Final metrics"),
        ("adapters", "/adapters", "Adapters", 0, "6 adapters"),
        ("adapter", f"/adapters?adapter={ids['diverged_adapter']}", "sentiment sweep v1", 0, "Lineage"),
        ("jobs", "/jobs", "Jobs", 0, "workers training"),
    ]
    for index, (name, path, heading, charts, ready) in enumerate(pages, start=1):
        open_page(page, url + path, heading, charts, ready)
        text = page.locator("[data-testid=stMain]").inner_text()
        assert "Page not found" not in text, path
        assert not re.search(r"\bNone\b", text), f"{path} shows a stray None"
        assert "Something went wrong" not in text, path
        page.screenshot(path=str(shots / f"{index:02d}-{name}.png"))
        whole_page_shot(page, shots / f"{index:02d}-{name}-whole.png")


def test_a_diverged_run_is_badged_on_its_page_and_its_adapter(team, page):
    url, _, ids = team

    badge = re.compile(r"^(warning)?\s*diverged$")  # the badge's icon is a ligature named "warning"

    open_page(page, f"{url}/run?run={ids['diverged']}", f"run-{ids['diverged']}", ready="step 1,000 of 1,000")
    assert page.get_by_text(badge).first.is_visible()
    assert page.get_by_text("step 1,000 of 1,000").is_visible()

    open_page(page, f"{url}/adapters?adapter={ids['diverged_adapter']}", "sentiment sweep v1", ready="Lineage")
    assert page.get_by_text(badge).first.is_visible()


def test_one_run_spiking_100x_leaves_the_others_spanning_most_of_the_plot(team, page):
    """The y range fits the bulk of the runs: the normal runs' curves use several times the height they get
    when "Show outliers" fits the spike too."""
    url, _, ids = team
    open_page(page, f"{url}/experiment?experiment={ids['sweep']}", "sentiment sweep", charts=2, ready="Runs (6)")

    fitted = normal_runs_height(page)
    assert fitted < NOT_DRAWN, "the normal runs are not on the loss chart"
    page.get_by_text("Show outliers").first.click()
    everything, deadline = fitted, time.monotonic() + WAIT_MS / 1000
    while everything >= fitted * 0.9 and time.monotonic() < deadline:  # until the chart is redrawn
        page.wait_for_timeout(1000)
        everything = normal_runs_height(page)

    assert fitted > 2.5 * everything, f"the other runs span {fitted} pixel rows, and {everything} with outliers shown"


def normal_runs_height(page) -> int:
    """Pixel rows between the highest and lowest point the normal runs paint on the loss chart."""
    loss = page.locator(CURVES).nth(1)
    loss.scroll_into_view_if_needed()
    loss.locator(".marks").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1500)
    image = Image.open(io.BytesIO(loss.screenshot())).convert("RGB")
    rows = painted_rows(image, PALETTE_OF_NORMAL_RUNS, width=int(image.width * 0.8))
    return rows[-1] - rows[0] if rows else NOT_DRAWN


def painted_rows(image: Image.Image, colours: list[str], width: int) -> list[int]:
    """The pixel rows where any of the colours is painted (within the left `width` pixels)."""
    targets = [tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5)) for colour in colours]
    pixels = image.load()
    rows = [
        y
        for y in range(image.height)
        if any(
            any(sum(abs(a - b) for a, b in zip(pixels[x, y], target, strict=True)) < 60 for target in targets)
            for x in range(0, width, 1)
        )
    ]
    return rows


@pytest.fixture(scope="module")
def long_names(tmp_path_factory):
    """A second app on a store like the team's, with an experiment and adapter named far longer than a column:
    yields the app's URL and its store."""
    data_dir = tmp_path_factory.mktemp("long-names")
    seed(data_dir)
    store = open_store(data_dir)
    experiment = store.create_experiment({"name": "llama-3-8b-instruct sentiment, rank 64, cosine schedule, " * 2, "dataset": SAMPLE})
    run = store.create_run(experiment, {"learning_rate": 0.001})
    store.mark_running(run, worker="gpu-box:3")
    folder = data_dir / "adapters" / "long"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    store.complete_run(run, {"path": str(folder), "base_model": "meta-llama/Meta-Llama-3-8B-Instruct", "size_bytes": 2, "checksum": "sha256:x"})
    process, url = start_app(
        data_dir / "streamlit.log",
        TUNEDECK_DATA_DIR=str(data_dir),
        TUNEDECK_EMBEDDED_WORKER="0",
        TUNEDECK_IDLE_CHECK_INTERVAL=str(IDLE_CHECK),
    )
    yield url, store
    stop(process)


@pytest.mark.parametrize(("path", "heading"), [("/experiments", "Experiments"), ("/experiments?deleted=true", "Experiments"), ("/adapters", "Adapters")])
def test_a_list_with_long_names_fits_1440_without_scrolling_sideways(long_names, page, path, heading):
    """Fixed widths left the experiments list 3 px too wide (its dates cut, a scroll bar) and cut the adapters
    list's experiment names while columns of dashes took 280 px."""
    open_page(page, long_names[0] + path, heading)
    grid = page.get_by_test_id("stDataFrame").filter(visible=True).first
    grid.wait_for(timeout=WAIT_MS)

    scroller = grid.locator(".dvn-scroller")
    widths = scroller.evaluate("s => [s.scrollWidth, s.clientWidth]")

    assert widths[0] <= widths[1], f"the table scrolls sideways: {widths[0]} px of content in {widths[1]}"


def test_idle_pages_show_what_starts_elsewhere_without_a_reload(long_names, page):
    """With nothing running, the experiments list, an experiment's page and the runs list stopped refreshing for
    good: a run started from a script showed only after a reload. Ticked rows hold the runs list as it is."""
    url, store = long_names
    for run in store.list_active_runs():  # the seeded live run: now nothing runs
        store.cancel_run(run.id)
    total = store.list_experiments().total
    open_page(page, f"{url}/experiments", "Experiments", ready=f"{total} experiments · page 1 of 1")
    mark_document(page)

    quiet = store.create_experiment({"name": "quiet", "dataset": SAMPLE})  # as a script or another tab would

    page.get_by_text(f"{total + 1} experiments · page 1 of 1").wait_for(timeout=WAIT_MS)
    open_page(page, f"{url}/experiment?experiment={quiet}", "quiet", ready="No runs yet")
    mark_document(page)

    store.mark_running(store.create_run(quiet, {"learning_rate": 0.001}), worker="gpu-box:4")

    page.get_by_role("heading", name="Runs (1)").wait_for(timeout=WAIT_MS)
    playwright.expect(page.get_by_text("running", exact=True).first).to_be_visible(timeout=WAIT_MS)
    assert same_document(page)

    store.cancel_run(store.list_runs(quiet)[0].id)
    runs = len(store.search_frame())
    open_page(page, f"{url}/runs", "Runs", ready=f"{runs} of {runs} runs match")
    mark_document(page)
    grid = page.get_by_test_id("stDataFrame").filter(visible=True).first
    tick_first_row(page, grid)

    store.create_run(quiet, {"learning_rate": 0.002})

    page.wait_for_timeout(3 * IDLE_CHECK * 1000)  # past the next idle checks: a redraw would move the tick onto another run
    assert page.get_by_text(f"{runs} of {runs} runs match").first.is_visible()
    tick_first_row(page, grid)  # untick
    page.get_by_text(f"{runs + 1} of {runs + 1} runs match").wait_for(timeout=WAIT_MS)
    assert same_document(page)


def test_ticked_runs_hold_an_idle_experiment_page_until_they_are_unticked(long_names, page):
    """Ticks are row positions: an idle check that redrew the runs table for a run started elsewhere would move
    the tick onto another run."""
    url, store = long_names
    held = store.create_experiment({"name": "held", "dataset": SAMPLE})
    ended = store.create_run(held, {"learning_rate": 0.001})
    store.cancel_run(ended)
    open_page(page, f"{url}/experiment?experiment={held}", "held", ready="Runs (1)")
    mark_document(page)
    tick_first_row(page, page.locator(".st-key-runs_table [data-testid=stDataFrame]"))
    playwright.expect(page.get_by_test_id("stMultiSelect").filter(has_text="Runs to compare")).to_contain_text(f"#{ended}")

    store.create_run(held, {"learning_rate": 0.002})  # as a script or another tab would

    page.wait_for_timeout(3 * IDLE_CHECK * 1000)  # past the next idle checks
    assert page.get_by_role("heading", name="Runs (1)").is_visible()
    tick_first_row(page, page.locator(".st-key-runs_table [data-testid=stDataFrame]"))  # untick
    page.get_by_role("heading", name="Runs (2)").first.wait_for(timeout=WAIT_MS)  # .first: a redraw under way shows the old one too
    assert same_document(page)


def test_ticked_runs_pause_a_live_experiment_page_until_they_are_unticked(long_names, page):
    """Ticks are row positions: a live refresh moved them, and the runs to compare, onto other runs when a new run
    came in at the top (or a running run's loss changed its rank)."""
    url, store = long_names
    held = store.create_experiment({"name": "live and ticked", "dataset": SAMPLE})
    going = store.create_run(held, {"learning_rate": 0.001})
    store.mark_running(going, worker="gpu-box:5")
    open_page(page, f"{url}/experiment?experiment={held}", "live and ticked", ready="Runs (1)")
    mark_document(page)
    runs_table = page.locator(".st-key-runs_table [data-testid=stDataFrame]")
    to_compare = page.get_by_test_id("stMultiSelect").filter(has_text="Runs to compare")
    try:
        tick_first_row(page, runs_table)
        playwright.expect(page.get_by_text("refreshing is paused while runs are ticked")).to_be_visible()
        playwright.expect(to_compare).to_contain_text(f"#{going}")

        newer = store.create_run(held, {"learning_rate": 0.002})  # as a script or another tab would: the new top row

        page.wait_for_timeout(4 * REFRESH_SECONDS * 1000)  # past the next refreshes: one would move the tick
        assert page.get_by_role("heading", name="Runs (1)").is_visible()
        playwright.expect(to_compare).to_contain_text(f"#{going}")
        playwright.expect(to_compare).not_to_contain_text(f"#{newer}")
        tick_first_row(page, runs_table)  # untick: the refresh starts again
        page.get_by_role("heading", name="Runs (2)").first.wait_for(timeout=WAIT_MS)  # .first: a redraw under way shows the old one too
        assert same_document(page)
    finally:
        for run in store.list_runs(held):
            store.cancel_run(run.id)


def test_the_adapters_list_shows_an_adapter_a_run_registers_without_a_reload(long_names, page, tmp_path):
    url, store = long_names
    before = len(store.list_adapters())
    open_page(page, f"{url}/adapters", "Adapters", ready=f"{plural(before, 'adapter')} · ")
    mark_document(page)
    experiment = store.create_experiment({"name": "registers", "dataset": SAMPLE})
    run = store.create_run(experiment, {"learning_rate": 0.001})
    store.mark_running(run, worker="gpu-box:6")
    (tmp_path / "adapter_config.json").write_text("{}")

    store.complete_run(run, {"path": str(tmp_path), "base_model": "tiny-base", "size_bytes": 2, "checksum": "sha256:x"})

    page.get_by_text(f"{plural(before + 1, 'adapter')} · ").wait_for(timeout=WAIT_MS)
    assert same_document(page)


def tick_first_row(page, grid) -> None:
    """Click the first row's tick box, and let its rerun end."""
    click_row(page, grid, x=18)
    page.wait_for_timeout(1_000)


def test_a_delete_shows_in_the_list_at_once_and_restore_brings_it_back(team, page):
    url, data_dir, _ = team
    open_page(page, f"{url}/experiments", "Experiments", ready="3 experiments · page 1 of 1")
    mark_document(page)

    page.get_by_text("Delete or restore").click()  # while the live experiment runs: the list stops refreshing
    pick(page, "Experiment", "summarisation baseline")
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Yes, delete").click()

    page.get_by_text("Deleted “summarisation baseline”.").wait_for(timeout=WAIT_MS)
    page.get_by_text("2 experiments · page 1 of 1").wait_for(timeout=WAIT_MS)
    # gone once the rerun that deleted it ends (until then Streamlit keeps the last run's elements, faded)
    playwright.expect(page.get_by_role("button", name="Yes, delete")).to_be_hidden(timeout=WAIT_MS)

    page.get_by_text("Show deleted").click()
    page.get_by_text("3 experiments · page 1 of 1").wait_for(timeout=WAIT_MS)  # the deleted one listed again
    pick(page, "Experiment", "summarisation baseline")
    page.get_by_role("button", name="Restore", exact=True).click()

    page.get_by_text("Restored “summarisation baseline”.").wait_for(timeout=WAIT_MS)
    assert open_store(data_dir).find_experiment("summarisation baseline") is not None
    assert same_document(page)


def test_the_experiment_page_goes_from_running_to_completed_without_a_reload(team, page):
    url, data_dir, ids = team
    open_page(page, f"{url}/experiment?experiment={ids['live_experiment']}", "live run", ready="Runs (1)")
    page.get_by_text("running", exact=True).first.wait_for(timeout=WAIT_MS)
    mark_document(page)

    finish_live_run(data_dir, ids["live_run"])

    page.get_by_text("completed", exact=True).first.wait_for(timeout=WAIT_MS)
    assert same_document(page)


def test_clicking_a_row_opens_it_in_the_same_tab(team, page):
    url, _, ids = team
    open_page(page, f"{url}/experiments", "Experiments", ready="experiments · page 1 of 1")
    mark_document(page)
    grid = page.get_by_test_id("stDataFrame").filter(visible=True).first  # not the dataset preview in the closed form
    box = grid.bounding_box()

    page.mouse.click(box["x"] + 60, box["y"] + 35 * 1.5)  # the first row's name, under the header row

    page.get_by_role("heading", name=re.compile(r"^Runs \(")).first.wait_for(timeout=WAIT_MS)
    assert re.search(r"/experiment\?experiment=\d+$", page.url)  # in-app navigation: history, not a page load
    assert len(page.context.pages) == 1
    assert same_document(page)


def open_the_first_experiment_and_go_back(page) -> None:
    grid = page.get_by_test_id("stDataFrame").filter(visible=True).first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 60, box["y"] + 35 * 1.5)  # the first row's name, under the header row
    page.get_by_role("heading", name=re.compile(r"^Runs \(")).first.wait_for(timeout=WAIT_MS)
    page.go_back()


def test_back_from_an_experiment_shows_the_list_filtered_and_sorted_as_it_was(team, page):
    """Streamlit's switch_page adds an entry of the list's path with ?experiment=N: Back to it showed every experiment."""
    url, _, _ = team
    open_page(page, f"{url}/experiments?q=sweep&sort=Name&desc=false", "Experiments", ready="1 experiment · page 1 of 1")
    open_the_first_experiment_and_go_back(page)

    page.get_by_text("1 experiment · page 1 of 1").first.wait_for(timeout=WAIT_MS)
    playwright.expect(page.get_by_label("Name contains")).to_have_value("sweep", timeout=WAIT_MS)
    page.wait_for_url(re.compile(r"[?&]q=sweep"), timeout=WAIT_MS)  # the address bar says so again
    assert "experiment=" not in page.url and "sort=Name" in page.url  # the select box's URL value is its label
    playwright.expect(page.get_by_text("Z to A")).to_be_visible(timeout=WAIT_MS)  # the order toggle, for a sort by name


def test_back_from_an_experiment_to_the_list_on_its_defaults_leaves_no_experiment_in_the_address(team, page):
    """The list's address read /experiments?experiment=N after Back, though it showed every experiment."""
    url, _, _ = team
    open_page(page, f"{url}/experiments", "Experiments", ready="3 experiments · page 1 of 1")
    open_the_first_experiment_and_go_back(page)

    page.get_by_text("3 experiments · page 1 of 1").first.wait_for(timeout=WAIT_MS)
    page.wait_for_url(re.compile(r"/experiments$"), timeout=WAIT_MS)


def test_a_run_opened_from_an_experiment_starts_on_its_own_panels_and_back_returns_to_the_experiment(team, page):
    """Every page's picker has the key `metrics`: the run page took the experiment's choice and wrote it into its
    own address, and Back (to the entry switch_page added: this path with ?run=N) showed the experiment picker, empty."""
    url, _, ids = team
    open_page(page, f"{url}/experiment?experiment={ids['sweep']}&metrics=eval_accuracy", "sentiment sweep", charts=1)
    grid = page.get_by_test_id("stDataFrame").filter(visible=True).first  # the runs table
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()

    page.mouse.click(box["x"] + 60, box["y"] + 35 * 1.5)  # the newest run's name, under the header row

    page.wait_for_url(re.compile(r"/run\?run=\d+$"), timeout=WAIT_MS)
    page.get_by_role("heading", name=re.compile(r"\(#\d+\)$")).first.wait_for(timeout=WAIT_MS)
    picker = page.get_by_test_id("stMultiSelect").filter(has_text="Metrics")
    playwright.expect(picker.get_by_text("loss", exact=True)).to_be_visible(timeout=WAIT_MS)  # the run page's defaults
    assert "metrics=" not in page.url

    page.go_back()

    picker = the_sweep_on_its_chosen_panel(page, ids)
    run_over(page)

    # Forward to the run and Back again: Streamlit drops a URL parameter that a widget of another page is bound to,
    # and the run page's picker was bound to `metrics` too, so the experiment came back on its default panels.
    page.go_forward()
    page.wait_for_url(re.compile(r"/run\?run=\d+$"), timeout=WAIT_MS)
    page.get_by_role("heading", name=re.compile(r"\(#\d+\)$")).first.wait_for(timeout=WAIT_MS)
    run_over(page)
    page.go_back()

    page.get_by_role("heading", name="sentiment sweep").first.wait_for(timeout=WAIT_MS)
    run_over(page)
    assert re.search(rf"experiment={ids['sweep']}.*metrics=eval_accuracy", page.url), page.url
    playwright.expect(picker.get_by_text("eval_accuracy", exact=True)).to_be_visible(timeout=WAIT_MS)
    playwright.expect(page.locator(CURVES)).to_have_count(1, timeout=WAIT_MS)


def the_sweep_on_its_chosen_panel(page, ids):
    """The sweep experiment drawn on eval_accuracy alone, its address saying so; returns its metric picker."""
    page.get_by_role("heading", name="sentiment sweep").first.wait_for(timeout=WAIT_MS)
    page.wait_for_url(re.compile(rf"experiment={ids['sweep']}.*metrics=eval_accuracy"), timeout=WAIT_MS)
    picker = page.get_by_test_id("stMultiSelect").filter(has_text="Metrics")
    playwright.expect(picker.get_by_text("eval_accuracy", exact=True)).to_be_visible(timeout=WAIT_MS)
    playwright.expect(page.locator(CURVES)).to_have_count(1, timeout=WAIT_MS)
    return picker

def test_back_from_a_comparison_started_on_an_experiment_returns_to_it_with_its_panels(team, page):
    """"Compare selected" leaves as a row click does: Back to the history entry switch_page added (the experiment's
    path with ?runs=A,B) showed the experiment page's picker (no experiment) and lost its chosen panels."""
    url, _, ids = team
    open_page(page, f"{url}/experiment?experiment={ids['sweep']}&metrics=eval_accuracy", "sentiment sweep", charts=1)
    grid = page.locator(".st-key-runs_table [data-testid=stDataFrame]")
    for row in (1, 2):
        click_row(page, grid, row=row, x=18)  # the tick boxes
        page.wait_for_timeout(1_000)
    ticked = page.get_by_test_id("stMultiSelect").filter(has_text="Runs to compare")
    playwright.expect(ticked.get_by_text(re.compile(r"\(#\d+\)$"))).to_have_count(2, timeout=WAIT_MS)

    page.get_by_role("button", name="Compare selected").click()
    page.get_by_role("heading", name="Compare runs").wait_for(timeout=WAIT_MS)
    page.wait_for_url(re.compile(r"/compare\?runs=\d+(%2C|,)\d+"), timeout=WAIT_MS)
    run_over(page)
    page.go_back()

    the_sweep_on_its_chosen_panel(page, ids)

def test_back_through_two_experiments_runs_returns_to_each_experiment(team, page):
    """One saved state per page: experiment A, a run, the list, experiment B, a run, then Back to the history entry
    A was left from showed B. Each st.switch_page leaves two entries: the page left, its query rewritten to the new
    page's, then the new page."""
    url, data_dir, ids = team
    listed = [experiment.id for experiment in open_store(data_dir).list_experiments(page_size=100).items]
    open_page(page, f"{url}/experiment?experiment={ids['sweep']}", "sentiment sweep", ready="Runs (")
    click_row(page, page.locator(".st-key-runs_table [data-testid=stDataFrame]"), x=80)  # the newest run's name
    run_of_a = page.get_by_role("heading", name=re.compile(r"\(#\d+\)$")).first
    run_of_a.wait_for(timeout=WAIT_MS)
    run_of_a = run_of_a.inner_text()
    page.get_by_test_id("stSidebarNav").get_by_text("Experiments", exact=True).click()
    page.get_by_text("experiments · page 1 of 1").first.wait_for(timeout=WAIT_MS)
    click_row(page, page.get_by_test_id("stDataFrame").filter(visible=True).first, row=1 + listed.index(ids["live_experiment"]))
    page.get_by_role("heading", name="live run").wait_for(timeout=WAIT_MS)
    click_row(page, page.locator(".st-key-runs_table [data-testid=stDataFrame]"), x=80)
    page.wait_for_url(re.compile(rf"/run\?run={ids['live_run']}$"), timeout=WAIT_MS)

    b, listed_page, run_a = rf"/experiment\?experiment={ids['live_experiment']}", r"/(\?(?!.*experiment=).*)?$", r"/run\?run=\d+$"
    for address, heading in ((b, "live run"), (b, "live run"), (listed_page, "Experiments"), (listed_page, "Experiments"), (run_a, run_of_a)):
        page.go_back()
        page.wait_for_url(re.compile(address), timeout=WAIT_MS)
        page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=WAIT_MS)
        # The page's run over before the next Back: a run still going when Back lands on the next entry rewrote
        # that entry's address to its own (a race between Streamlit's runs and quick Backs, not this test's subject).
        run_over(page)
    page.go_back()

    shown = page.get_by_role("heading", name=re.compile(r"^(sentiment sweep|live run)$")).first
    shown.wait_for(timeout=WAIT_MS)
    assert shown.inner_text() == "sentiment sweep"
    page.wait_for_url(re.compile(rf"experiment={ids['sweep']}"), timeout=WAIT_MS)


def run_over(page) -> None:
    """Wait until the page's script run has ended (Streamlit shows its status widget while one goes)."""
    page.wait_for_timeout(500)  # the widget comes a moment after the run starts
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)


def click_row(page, grid, row: int = 1, x: int = 60) -> None:
    """Click a table's row (1: the first under the header row) `x` px from its left edge."""
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + 35 * (row + 0.5))


def test_the_metric_picker_is_remembered_in_the_url(team, page):
    """A metric added in the picker goes into the address bar, so the link reopens the same panels."""
    url, _, ids = team
    open_page(page, f"{url}/experiment?experiment={ids['sweep']}", "sentiment sweep", charts=2)
    assert "metrics=" not in page.url  # the default panels: nothing to remember yet

    pick(page, "Metrics", "samples_per_second", widget="stMultiSelect")

    page.wait_for_url(re.compile(r"[?&]metrics=[^&#]*samples_per_second"), timeout=WAIT_MS)
    playwright.expect(page.locator(CURVES)).to_have_count(3, timeout=WAIT_MS)

    open_page(page, f"{url}/experiment?experiment={ids['sweep']}&metrics=samples_per_second", "sentiment sweep", charts=1)
    picker = page.get_by_test_id("stMultiSelect").filter(has_text="Metrics")
    assert picker.get_by_text("samples_per_second", exact=True).is_visible()  # the URL's choice, not the defaults
    assert page.locator(CURVES).count() == 1


def test_a_cancels_confirmation_outlasts_the_jobs_pages_refreshes(team, page):
    """The Jobs page redraws its table every 3 s; the confirmation stays until the user's next click."""
    url, data_dir, _ = team
    store = open_store(data_dir)
    waiting = store.create_run(store.create_experiment({"name": "waiting", "dataset": SAMPLE}), {"max_steps": 10})
    open_page(page, f"{url}/jobs", "Jobs", ready="workers training")

    pick(page, "Run", f"(#{waiting})")  # the list may close as the page redraws: it is opened again
    page.get_by_role("button", name="Cancel run…").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    said = page.get_by_text(re.compile(rf"^Cancelled .* \(#{waiting}\) before it started\.$"))
    said.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(7_000)  # two of the table's refreshes

    assert said.is_visible()
    assert store.get_run(waiting).status == "cancelled"


def test_the_runs_page_follows_runs_to_their_end_without_a_reload(team, page):
    """The Runs page was the one list that never refreshed: finished runs read "running" until a reload. Ticking a
    run pauses the refresh (ticks are row positions, which a new run would move onto others); unticking resumes it."""
    url, data_dir, ids = team
    store = open_store(data_dir)
    extra = store.create_run(ids["live_experiment"], {"learning_rate": 0.001})
    store.mark_running(extra, worker="gpu-box:3")
    open_page(page, f"{url}/runs", "Runs", ready="queued or running: this list refreshes itself")
    mark_document(page)
    grid = page.get_by_test_id("stDataFrame").filter(visible=True).first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 35 * 1.5)  # the first row's tick box
    page.get_by_text("refreshing is paused while runs are ticked").wait_for(timeout=WAIT_MS)
    page.mouse.click(box["x"] + 18, box["y"] + 35 * 1.5)
    page.get_by_text("this list refreshes itself until they end").wait_for(timeout=WAIT_MS)

    if not store.get_run(ids["live_run"]).status.is_terminal:
        finish_live_run(data_dir, ids["live_run"])
    store.complete_run(extra)

    page.get_by_text("queued or running").wait_for(state="detached", timeout=WAIT_MS)
    assert page.get_by_text(re.compile(r"^\d+ of \d+ runs match")).first.is_visible()
    assert same_document(page)


def test_the_experiments_list_refreshes_itself_while_an_experiment_runs(team, page):
    url, data_dir, _ = team
    store = open_store(data_dir)
    running = store.create_run(store.create_experiment({"name": "list while running", "dataset": SAMPLE}), {})
    store.mark_running(running, worker="gpu-box:4")
    shown = store.list_experiments().total
    open_page(page, f"{url}/experiments", "Experiments", ready=f"{shown} experiments · page 1 of 1")
    mark_document(page)

    store.create_experiment({"name": "made on another machine", "dataset": SAMPLE})

    page.get_by_text(f"{shown + 1} experiments · page 1 of 1").wait_for(timeout=WAIT_MS)
    store.complete_run(running)
    assert same_document(page)


def test_the_compare_page_draws_curves_as_its_runs_log_them_without_a_reload(team, page):
    url, data_dir, _ = team
    store = open_store(data_dir)
    experiment = store.create_experiment({"name": "compare while running", "dataset": SAMPLE})
    first, second = (store.create_run(experiment, {"learning_rate": rate}) for rate in (0.01, 0.001))
    store.mark_running(first, worker="gpu-box:5")
    open_page(page, f"{url}/compare?runs={first},{second}", "Compare runs", ready="No metrics logged yet.")
    mark_document(page)

    with MetricWriter(store) as writer:
        writer.log_series(first, "loss", range(1, 21), [1.0 / step for step in range(1, 21)])

    page.locator(CURVES).first.locator(".marks").wait_for(timeout=WAIT_MS)
    playwright.expect(page.get_by_text("No metrics logged yet.")).to_be_hidden(timeout=WAIT_MS)
    store.complete_run(first)
    store.cancel_run(second)
    assert same_document(page)
