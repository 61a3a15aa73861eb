"""Time to a page a person can read, in a real browser: from following a link to the page's heading being shown,
and to its first curve being drawn (target 0.7 s each, on a quiet machine).

Seeds bench.load's team (3 experiments x 20 runs x 2,000 steps), starts `streamlit run app.py` with the project's
settings, and opens the pages in headless Chromium at 1440 x 900, two ways:

- **link**: in the app's tab, as its links do (same tab, no reload: the URL changes and Streamlit runs the page);
- **new tab**: a new tab opening the page's URL (page load, a new Streamlit session), the browser's cache warm.

Times are taken inside the page (`performance.now()`), not by polling from the test driver: from the navigation
to the heading with the page's own text, and to the first curve's marks, scrolled into view as soon as it exists
(Streamlit draws a chart once it is in view). A second between visits lets the last page finish drawing. One
warm-up round, then the timed rounds.

    python -m bench.browser                 # about a minute
    python -m bench.browser --rounds 10
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.load import pages, seed
from bench.timing import Timing
from tests.servers import launch_chromium, start_app, stop

TARGET_S = 0.7
PAUSE_S = 1.0
CURVES = '.stElementContainer[data-stale="false"]:not([class*="st-key-hp_chart"]) [data-testid=stVegaLiteChart]'
WITH_CURVES = ("experiment", "compare", "run")

# Resolves to [ms to the heading, ms to the first curve or null], counted from `start` (performance.now() values).
WAIT = """
([start, heading, curves, selector]) => new Promise((done, fail) => {
  let shown = null;
  const limit = setTimeout(() => fail(new Error(`no ${shown === null ? 'heading ' + heading : 'curve'} in 30 s`)), 30000);
  const tick = () => {
    if (shown === null && [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === heading)) {
      shown = performance.now() - start;
      if (!curves) { clearTimeout(limit); return done([shown, null]); }
    }
    const chart = shown === null ? null : document.querySelector(selector);
    if (chart) {
      chart.scrollIntoView({block: 'center'});
      if (chart.querySelector('.marks')) { clearTimeout(limit); return done([shown, performance.now() - start]); }
    }
    requestAnimationFrame(tick);
  };
  tick();
})
"""
FOLLOW = """
([url, heading, curves, selector]) => {
  const start = performance.now();
  history.pushState({}, '', url);
  dispatchEvent(new PopStateEvent('popstate', {state: {}}));
  return window.tunedeckWait([start, heading, curves, selector]);
}
"""


def headings(store) -> dict[str, str]:
    """The heading each visited page shows, by its query string."""
    found = {"": "Experiments"}
    for experiment in store.list_experiments(page_size=100).items:
        found[f"experiment={experiment.id}"] = experiment.name
        for run in store.list_runs(experiment.id):
            found[f"run={run.id}"] = f"{run.name} (#{run.id})"
    return found


def link(name: str, query: str) -> str:
    return f"/{name}" + (f"?{query}" if query else "")


def main() -> None:
    from core import open_store

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="timed visits of each page each way, after one warm-up round")
    arguments = parser.parse_args()
    times: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    with tempfile.TemporaryDirectory(prefix="tunedeck-browser-") as folder:
        data_dir = Path(folder)
        order = pages(seed(data_dir))
        texts = headings(open_store(data_dir))
        process, url = start_app(data_dir / "streamlit.log", TUNEDECK_DATA_DIR=str(data_dir), TUNEDECK_EMBEDDED_WORKER="0")
        try:
            with sync_playwright() as driver:
                browser = launch_chromium(driver)
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                context.add_init_script(f"window.tunedeckWait = {WAIT}")
                app_tab = context.new_page()
                app_tab.goto(url)
                app_tab.get_by_role("heading", name="Experiments").wait_for(timeout=30_000)
                for round_ in range(arguments.rounds + 1):
                    for name, query in order:
                        heading = texts.get(query, "Compare runs")
                        curves = name in WITH_CURVES
                        time.sleep(PAUSE_S)
                        followed = app_tab.evaluate(FOLLOW, [link(name, query), heading, curves, CURVES])
                        time.sleep(PAUSE_S)
                        tab = context.new_page()
                        tab.goto(url + link(name, query), wait_until="commit")
                        opened = tab.evaluate("args => window.tunedeckWait(args)", [0, heading, curves, CURVES])  # 0: the page load
                        tab.close()
                        if round_:
                            times.setdefault(("link", name), []).append(tuple(followed))
                            times.setdefault(("new tab", name), []).append(tuple(opened))
                browser.close()
        finally:
            stop(process)
    print(f"{arguments.rounds} visits of each page each way; median (p90) seconds; target {TARGET_S} s:")
    for (way, name), visits in times.items():
        heading = [shown / 1000 for shown, _ in visits]
        curves = [curve / 1000 for _, curve in visits if curve is not None]
        line = f"  {way:8s} {name:12s} heading {_summary(heading)}"
        if curves:
            line += f", first curve {_summary(curves)}"
        worst = max(statistics.median(heading), statistics.median(curves) if curves else 0)
        print(line + f"  {'pass' if worst <= TARGET_S else 'FAIL'}")


def _summary(seconds: list[float]) -> str:
    timing = Timing(tuple(seconds))  # its _ms names aside, the same median and p90
    return f"{timing.median_ms:.2f} ({timing.p90_ms:.2f})"


if __name__ == "__main__":
    main()
