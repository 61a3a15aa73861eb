"""The experiment page's views over many runs in headless Chromium: groups over seeds, group curves, parallel
coordinates and a scatter whose points open their run; the adapter page with an alias and its zip download.
Screenshots land in the folder printed under -s (TUNEDECK_SCREENSHOTS picks one)."""

import os
import tempfile
from pathlib import Path

import pytest

from core import open_store
from core.writer import MetricWriter
from tests.browser import needs_chromium
from tests.browser.late_timer import LateTimer
from tests.optional import require
from tests.servers import launch_chromium, start_app, stop

require("playwright", install="pip install -r requirements.txt")
from playwright import sync_api as playwright

pytestmark = needs_chromium()

WAIT_MS = 90_000
SAMPLE = "data/sample/sentiment.csv"
RATES, RANKS, SEEDS = (1e-3, 3e-3, 1e-2), (4, 16), (1, 2, 3)


def seed_grid(data_dir: Path) -> dict:
    """A grid of 3 learning rates x 2 ranks, each over 3 seeds, with eval_loss curves; an adapter with an alias."""
    store = open_store(data_dir)
    experiment_id = store.create_experiment({"name": "seed grid", "dataset": SAMPLE})
    runs = []
    with MetricWriter(store) as writer:
        for rate in RATES:
            for rank in RANKS:
                for seed in SEEDS:
                    run_id = store.create_run(
                        experiment_id, {"learning_rate": rate, "lora_rank": rank, "seed": seed, "epochs": 2}
                    )
                    final = 0.2 + abs(rate - 3e-3) * 30 + 0.02 * seed + (0.05 if rank == 4 else 0)
                    writer.log_series(
                        run_id, "eval_loss", range(0, 101, 10), [1.0 - (1.0 - final) * (i / 10) ** 0.5 for i in range(11)]
                    )
                    runs.append(run_id)
    for run_id in runs:
        store.mark_running(run_id, worker="gpu-box:1")
        store.complete_run(run_id)
    folder = data_dir / "adapters" / "grid"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 16}')
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    extra = store.create_run(experiment_id, {"learning_rate": 3e-3, "lora_rank": 16, "seed": 9, "epochs": 2})
    store.mark_running(extra, worker="gpu-box:1")
    adapter = store.complete_run(
        extra, {"path": str(folder), "base_model": "tiny-base", "size_bytes": 80, "checksum": "sha256:x"}
    )
    store.set_adapter_alias(adapter.id, "production")
    return {"experiment": experiment_id, "adapter": adapter.id}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("grid")
    ids = seed_grid(data_dir)
    process, url = start_app(data_dir / "streamlit.log", TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0")
    yield url, ids
    stop(process)


@pytest.fixture(scope="module")
def late():
    return LateTimer()


@pytest.fixture(scope="module")
def page(late):
    """The page's socket to Streamlit goes through `late`, which passes everything on until a test fires it."""
    with playwright.sync_playwright() as driver:
        browser = launch_chromium(driver)
        tab = browser.new_page(viewport={"width": 1440, "height": 900})
        tab.route_web_socket("**/_stcore/stream", late.route)
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("TUNEDECK_SCREENSHOTS") or tempfile.mkdtemp(prefix="tunedeck-views-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")

    def take(page, name: str, element=None) -> None:
        page.wait_for_timeout(1200)  # let the charts paint
        (element or page).screenshot(path=str(folder / f"{name}.png"))

    return take


def chart_titled(page, text: str):
    chart = page.locator("[data-testid=stVegaLiteChart]").filter(has_text=text).first
    chart.scroll_into_view_if_needed(timeout=WAIT_MS)
    chart.locator(".marks").first.wait_for(timeout=WAIT_MS)
    return chart


def test_groups_parallel_coordinates_and_a_scatter_click_that_opens_the_run(app, page, shots, late):
    """The scatter's click opens the run while the experiment page's idle check falls due: a check due as a click
    switched pages ran after the new page, as the old one, and left the run page blank (CI caught it once). Here the
    check's request is sent every 20 ms from the click until the run page is in."""
    url, ids = app
    page.goto(f"{url}/experiment?experiment={ids['experiment']}")
    page.get_by_role("heading", name="Groups").wait_for(timeout=WAIT_MS)
    page.get_by_text("19 runs in 6 groups").wait_for(timeout=WAIT_MS)
    page.get_by_role("heading", name="Groups").scroll_into_view_if_needed()
    shots(page, "10-groups")

    parallel = chart_titled(page, "learning_rate, lora_rank, seed")
    assert parallel.locator("g.mark-line path").count() == 18  # the adapter's run logged no eval_loss
    shots(page, "11-parallel-coordinates", parallel)

    page.get_by_text("Scatter", exact=True).click(timeout=WAIT_MS)
    scatter = chart_titled(page, "eval_loss by learning_rate")
    points = scatter.locator("g.mark-symbol.role-mark path")
    assert points.count() == 18
    shots(page, "12-scatter", scatter)
    late.arm()
    points.first.click(timeout=WAIT_MS)
    for _ in range(WAIT_MS // 20):
        if late.switched:
            break
        late.fire()
        page.wait_for_timeout(20)
    page.wait_for_timeout(1000)  # a request queued behind the run page's run runs right after it
    assert late.switched
    assert late.runs_after_switch == late.runs_after_switch[:1], "a page ran after the run page"
    page.wait_for_url("**/run?run=*", timeout=WAIT_MS)
    page.get_by_text("Clone: a new run with these settings").wait_for(timeout=WAIT_MS)
    late.disarm()


def test_group_curves_draw_a_band_per_group(app, page, shots):
    url, ids = app
    page.goto(f"{url}/experiment?experiment={ids['experiment']}")
    page.get_by_text("By group: mean ± std").click(timeout=WAIT_MS)
    chart = chart_titled(page, "mean of each group")
    assert chart.locator("g.mark-area.role-mark path").count() == 6  # a band per group
    assert chart.locator("g.mark-line.role-mark path").count() == 6  # and its mean
    shots(page, "13-group-curves", chart)


def test_the_adapter_page_shows_its_alias_and_downloads_a_zip(app, page, shots):
    url, ids = app
    page.goto(f"{url}/adapters?adapter={ids['adapter']}")
    page.get_by_role("heading", name="Aliases").wait_for(timeout=WAIT_MS)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as zip").click(timeout=WAIT_MS)
    assert download.value.suggested_filename == "seed_grid-v1.zip"
    page.get_by_role("heading", name="Aliases").scroll_into_view_if_needed()
    shots(page, "14-adapter-aliases")
    page.goto(f"{url}/adapters")
    page.get_by_text("1 adapter ·").wait_for(timeout=WAIT_MS)  # the table is a canvas: the screenshot shows the alias
    shots(page, "15-adapters-registry")
