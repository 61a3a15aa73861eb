"""Prediction samples in headless Chromium: text from the data stays text (no script runs, no Markdown renders),
long texts are folded, and the run and compare views are drawn. Screenshots land in TUNEDECK_SCREENSHOTS (or the
folder printed under -s)."""

import re

import pytest

from core import open_store
from core.writer import MetricWriter
from tests.browser import needs_chromium
from tests.browser.test_screens import WAIT_MS, browser, open_page, page, shots  # noqa: F401 - fixtures
from tests.servers import start_app, stop

pytestmark = needs_chromium()

HOSTILE = '<script>window.__pwned = 1</script> **not bold** <img src=x onerror="window.__pwned = 2">'
LONG = " ".join(["a long review that keeps going"] * 40)


def answers(run: int) -> list[dict]:
    right = ["positive", "negative", "neutral", "positive", "negative"]
    rows = [
        {
            "example_id": f"ex-{i}",
            "input": f"review number {i}",
            "reference": label,
            "prediction": label if (i + run) % 3 else "neutral",
        }
        for i, label in enumerate(right)
    ]
    rows.append({"example_id": "hostile", "input": HOSTILE, "reference": "positive", "prediction": HOSTILE})
    rows.append({"example_id": "long", "input": LONG, "reference": "negative", "prediction": "negative" if run == 1 else LONG})
    return rows


@pytest.fixture(scope="module")
def samples_app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("samples")
    store = open_store(data_dir)
    experiment_id = store.create_experiment({"name": "samples in a browser", "dataset": "data/sample/sentiment.csv"})
    runs = [store.create_run(experiment_id, {"learning_rate": lr, "epochs": 1}, name=f"lr {lr}") for lr in (0.01, 0.02)]
    with MetricWriter(store) as writer:
        for run_id, loss in zip(runs, (0.3, 0.4), strict=True):
            writer.log_series(run_id, "eval_loss", [10, 20], [loss + 0.2, loss])
    for number, run_id in enumerate(runs, start=1):
        store.mark_running(run_id, worker="host:1")
        store.complete_run(run_id)
        store.log_samples(run_id, 10, answers(number + 1))
        store.log_samples(run_id, 20, answers(number))
    process, url = start_app(data_dir / "streamlit.log", TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0")
    yield url, runs
    stop(process)


def to_top(tab, heading: str) -> None:
    """Scroll the section under `heading` to the top of the window, for its screenshot."""
    tab.get_by_role("heading", name=heading, exact=True).evaluate("element => element.scrollIntoView({block: 'start'})")
    tab.wait_for_timeout(800)


def read_in_full(tab, example: str) -> str:
    """Choose an example in "Read an example in full" and return the text of its first code block."""
    box = tab.get_by_test_id("stSelectbox").filter(has_text="Read an example in full")
    box.scroll_into_view_if_needed()
    box.click()
    tab.get_by_role("option", name=example, exact=True).click()
    code = tab.get_by_test_id("stCode").first
    code.wait_for(timeout=WAIT_MS)
    return code.inner_text()


def assert_nothing_ran_or_rendered(tab) -> None:
    assert tab.evaluate("() => window.__pwned") is None, "a script from the data ran"
    main = tab.get_by_test_id("stMain")
    assert main.locator("img[src=x]").count() == 0, "an image tag from the data was rendered"
    assert main.locator("strong", has_text="not bold").count() == 0, "Markdown from the data was rendered"


def test_a_sample_containing_a_script_is_shown_as_text_on_the_run_page(samples_app, page, shots):  # noqa: F811
    url, runs = samples_app
    open_page(page, f"{url}/run?run={runs[0]}", f"lr 0.01 (#{runs[0]})", ready="since step 10")

    to_top(page, "Predictions")
    page.screenshot(path=str(shots / "samples-run.png"))
    shown = read_in_full(page, "hostile")

    assert "<script>window.__pwned = 1</script>" in shown and "**not bold**" in shown
    assert_nothing_ran_or_rendered(page)
    page.screenshot(path=str(shots / "samples-run-full-text.png"))


def test_the_compare_view_shows_the_runs_side_by_side_with_hostile_text_as_text(samples_app, page, shots):  # noqa: F811
    url, runs = samples_app
    open_page(page, f"{url}/compare?runs={runs[0]},{runs[1]}", "Compare runs", ready="Predictions side by side")

    to_top(page, "Predictions side by side")
    page.screenshot(path=str(shots / "samples-compare.png"))
    assert page.get_by_text(re.compile(r"Right answers per run")).is_visible()
    shown = read_in_full(page, "long")

    assert LONG in shown.replace("\n", " ")  # the whole text, where the table cell folds it
    assert_nothing_ran_or_rendered(page)
