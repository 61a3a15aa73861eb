"""The running app in headless Chromium: create, train, compare, follow to the adapter.

Screenshots of every page land in the folder this test prints (TUNEDECK_SCREENSHOTS or a temp dir).
"""

import os
import re
import tempfile
from pathlib import Path

import pytest

from core import open_store
from tests.browser import needs_chromium
from tests.optional import require
from tests.servers import launch_chromium, start_app, stop
from tests.waiting import wait_for

require("playwright", install="pip install -r requirements.txt")
from playwright import sync_api as playwright

pytestmark = needs_chromium()


@pytest.fixture
def server(tmp_path):
    process, url = start_app(tmp_path / "streamlit.log", TUNEDECK_DATA_DIR=str(tmp_path), TUNEDECK_EMBEDDED_WORKER="1")
    yield url, tmp_path
    stop(process)


@pytest.fixture
def browser_page():
    with playwright.sync_playwright() as driver:
        browser = launch_chromium(driver)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        yield page
        browser.close()


@pytest.fixture
def shots():
    folder = Path(os.environ.get("TUNEDECK_SCREENSHOTS") or tempfile.mkdtemp(prefix="tunedeck-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")

    def take(page, name: str) -> None:
        page.wait_for_timeout(500)  # let charts finish drawing
        page.screenshot(path=str(folder / f"{name}.png"))

    return take


ROW_HEIGHT = 35  # pixels a row of st.dataframe takes, its header's too: a row's tick box is at its left end


def settle(page) -> None:
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("stApp").wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)


def test_create_train_compare_and_follow_to_the_adapter(server, browser_page, shots):
    url, data_dir = server
    page = browser_page

    page.goto(url)
    settle(page)
    page.get_by_text("New experiment").click()
    page.get_by_label("Name", exact=True).fill("browser sentiment")
    page.get_by_label("Name", exact=True).press("Enter")
    page.get_by_text("3,000 rows").wait_for()
    shots(page, "01-experiments-create")
    page.get_by_role("button", name="Create experiment").click()
    page.get_by_text("Created experiment").wait_for()
    page.get_by_role("link", name="Open it").click()
    page.get_by_role("heading", name="browser sentiment").wait_for()

    page.get_by_text("New run").click()
    page.get_by_text("Grid", exact=True).click()
    page.get_by_role("textbox", name="Settings to sweep").fill("learning_rate = 0.003, 0.03")
    page.get_by_role("textbox", name="Settings to sweep").press("Control+Enter")
    page.get_by_text("This grid starts 2 runs").wait_for()
    page.get_by_role("button", name="Start 2 runs").click()
    page.get_by_text("Started 2 runs").wait_for()

    store = open_store(data_dir)
    experiment = store.list_experiments().items[0]
    wait_for(lambda: store.get_experiment(experiment.id).status == "completed", timeout=120, what="both runs to complete", every=0.5)
    page.reload()
    settle(page)
    page.get_by_text("best final eval_loss", exact=True).wait_for()
    shots(page, "02-experiment")

    table = page.get_by_test_id("stDataFrame").first  # the runs table: tick its two rows, as its caption says
    table.scroll_into_view_if_needed()
    for row in (1, 2):
        box = table.bounding_box()
        page.mouse.click(box["x"] + 15, box["y"] + ROW_HEIGHT * row + ROW_HEIGHT / 2)
        settle(page)
    picked = page.get_by_test_id("stMultiSelect").filter(has_text="Runs to compare")
    for run in store.list_runs(experiment.id):  # the ticked runs, in the box that compares them
        picked.get_by_text(f"{run.name} (#{run.id})").wait_for()
    page.get_by_role("button", name="Compare selected").click()
    page.get_by_role("heading", name="Final metrics").wait_for()
    assert re.search(r"runs=\d+(%2C|,)\d+", page.url)
    shots(page, "03-compare")

    run_id = store.list_runs(experiment.id)[0].id
    page.goto(f"{url}/run?run={run_id}")
    settle(page)
    page.get_by_text("eval_accuracy").first.wait_for()
    shots(page, "04-run")
    page.get_by_role("link", name=re.compile(r"Adapter browser sentiment v\d")).click()
    page.get_by_role("heading", name="Lineage").wait_for()
    page.get_by_text("adapter_model.safetensors").wait_for(state="attached")
    shots(page, "05-adapter")

    page.goto(f"{url}/adapters")
    settle(page)
    shots(page, "06-adapters")
    page.goto(f"{url}/jobs")
    settle(page)
    shots(page, "07-jobs")
    page.goto(f"{url}/experiments")
    settle(page)
    shots(page, "08-experiments")


def test_a_deep_link_as_the_first_visit_gets_the_whole_app(tmp_path, browser_page):
    """Before app.py has run once, Streamlit hands a deep link straight to the page file (streamlit#9624)."""
    experiment_id = open_store(tmp_path).create_experiment({"name": "linked first", "dataset": "data/sample/sentiment.csv"})
    process, url = start_app(tmp_path / "streamlit.log", TUNEDECK_DATA_DIR=str(tmp_path))
    try:
        browser_page.goto(f"{url}/experiment?experiment={experiment_id}")  # the server's very first page
        settle(browser_page)

        browser_page.get_by_role("heading", name="linked first").wait_for()
        sidebar = browser_page.get_by_test_id("stSidebar")
        assert sidebar.get_by_text("Experiments", exact=True).is_visible()  # app.py's navigation, with its titles
        assert sidebar.get_by_text("Store:").is_visible()
        assert not sidebar.get_by_text("experiments", exact=True).is_visible()  # not the bare file names
    finally:
        stop(process)
