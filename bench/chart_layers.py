"""What a curve panel costs the browser to draw, layer by layer, on a page with nothing else on it.

`bench.browser` times whole pages; this isolates the charts. The compare page's panels for 20 runs (4 keys,
2,000 steps each, drawn as `core.charts.metric_panels` draws them) are served by a bare Streamlit app in
several variants, each with layers taken out, and headless Chromium follows an in-app link to each in turn
(as `bench.browser` does), timing from the navigation to the first panel's marks and to every panel's.

    python -m bench.chart_layers                  # about two minutes
    python -m bench.chart_layers --runs 2 --panels 1
"""

import argparse
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from playwright.sync_api import sync_playwright

from core import charts
from tests.servers import free_port, healthy, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("loss", "eval_loss", "learning_rate", "samples_per_second")

APP = """
import pickle
from pathlib import Path

import streamlit as st


def blank():
    st.title("Blank")


def panels():
    st.title("Panels")
    for spec in pickle.loads(Path(f"{st.query_params['variant']}.pkl").read_bytes()):
        st.vega_lite_chart(spec=spec, width="stretch")


st.navigation([st.Page(blank, url_path="blank", default=True), st.Page(panels, url_path="panels")]).run()
"""

# Resolves to [ms to the first panel's marks, ms to every panel's], from the navigation.
FOLLOW = """
([url, count]) => new Promise(done => {
  const start = performance.now();
  let first = null;
  history.pushState({}, '', url);
  dispatchEvent(new PopStateEvent('popstate', {state: {}}));
  const tick = () => {
    const now = performance.now() - start;
    const shown = [...document.querySelectorAll('h1')].some(h => h.innerText.trim() === 'Panels');
    const drawn = shown ? [...document.querySelectorAll('.stElementContainer[data-stale="false"] [data-testid=stVegaLiteChart]')]
      .filter(chart => chart.querySelector('.marks')).length : 0;
    if (drawn && first === null) first = now;
    if (count === 0 ? shown : drawn >= count) return done([first, now]);
    if (now > 30000) return done([first, null]);
    requestAnimationFrame(tick);
  };
  tick();
})
"""


def series(runs: int, steps: int) -> pl.DataFrame:
    """bench.load's curves: a noisy loss, a linear learning-rate decay, a noisy throughput, an eval every 100 steps."""
    rng = np.random.default_rng(0)
    step = np.arange(1, steps + 1)
    start = datetime(2026, 1, 1)
    frames = []
    for run_id in range(1, runs + 1):
        curves = {
            "loss": (step, 2.0 / np.sqrt(step) + rng.normal(0, 0.02, steps) + 0.1),
            "learning_rate": (step, 1e-3 * (1 - step / steps)),
            "samples_per_second": (step, 900 + rng.normal(0, 100, steps)),
            "eval_loss": (step[::100], 1.0 / np.sqrt(step[::100])),
        }
        for key, (at, value) in curves.items():
            wall = [start + timedelta(seconds=int(s)) for s in at]
            frames.append(pl.DataFrame({"run_id": run_id, "key": key, "step": at, "value": value, "wall_time": wall}))
    return pl.concat(frames)


def without(spec: dict, layers_out) -> dict:
    """The panel with the layers `layers_out(layer)` picks taken out."""
    return {**spec, "layer": [layer for layer in spec["layer"] if not layers_out(layer)]}


def line_only(spec: dict) -> dict:
    """Just the curves: no band, no tooltip points, no legend highlight or zoom."""
    lines = [layer for layer in spec["layer"] if layer["mark"]["type"] == "line"]
    bare = [{**layer, "encoding": {k: v for k, v in layer["encoding"].items() if k != "opacity"}} for layer in lines]
    return {**spec, "layer": [{k: v for k, v in layer.items() if k != "params"} for layer in bare]}


VARIANTS = {
    "as drawn": lambda spec: spec,
    "no tooltip layer": lambda spec: without(spec, lambda layer: "tooltip" in layer["encoding"]),
    "no min/max band": lambda spec: without(spec, lambda layer: layer["mark"]["type"] == "area"),
    "line only": line_only,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--panels", type=int, default=len(KEYS), help="how many of the 4 panels the page draws")
    parser.add_argument("--rounds", type=int, default=6, help="timed visits of each variant, after one warm-up round")
    arguments = parser.parse_args()
    keys = list(KEYS[: arguments.panels])
    options = charts.ChartOptions(buckets=charts.points_per_curve(arguments.runs, len(keys)))
    names = {run_id: f"run-{run_id}" for run_id in range(1, arguments.runs + 1)}
    specs = charts.metric_panels(series(arguments.runs, arguments.steps), keys, run_names=names, options=options)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="tunedeck-chart-layers-") as folder:
        app = Path(folder)
        (app / "app.py").write_text(APP)
        shutil.copytree(ROOT / ".streamlit", app / ".streamlit")
        for index, variant in enumerate(VARIANTS.values()):
            (app / f"v{index}.pkl").write_bytes(pickle.dumps([variant(spec) for spec in specs]))
        port = free_port()
        command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
        server = subprocess.Popen(command, cwd=app, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"http://localhost:{port}"
        try:
            while not healthy(url):
                time.sleep(0.3)
            with sync_playwright() as driver:
                browser = launch_chromium(driver)
                tab = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
                tab.goto(url)
                tab.get_by_role("heading", name="Blank").wait_for(timeout=30_000)
                for round_ in range(arguments.rounds + 1):
                    for index, name in enumerate(VARIANTS):
                        tab.evaluate(FOLLOW, ["/blank", 0])
                        time.sleep(1.0)  # the blank page settles; the last panels are gone
                        first, every = tab.evaluate(FOLLOW, [f"/panels?variant=v{index}", len(specs)])
                        if every is None:
                            raise SystemExit(f"{name}: the panels were not all drawn within 30 s")
                        if round_:
                            times[name].append((first, every))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    points = [spec["datasets"][charts.DATASET].height for spec in specs]
    print(f"{arguments.runs} runs, panels {keys} ({points} points each); median (p90) ms from following the link:")
    for name, visits in times.items():
        first, every = [v[0] for v in visits], [v[1] for v in visits]
        print(f"  {name:18s} first panel {_summary(first)}   every panel {_summary(every)}")


def _summary(values: list[float]) -> str:
    values = sorted(values)
    return f"{statistics.median(values):6.0f} ({values[int(0.9 * (len(values) - 1))]:6.0f})"


if __name__ == "__main__":
    main()
