"""Start the real app (`streamlit run app.py`) on a free local port, for tests that need a server."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from jobs import processes

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(log_path: Path, port: int | None = None, **env: str) -> tuple[subprocess.Popen, str]:
    """The server process and its URL, once it answers its health check."""
    port = port or free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log_path.open("a"), stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while not healthy(url):
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"the app did not start; see {log_path}")
        time.sleep(0.3)
    return process, url


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200
    except OSError:
        return False


def stop(process: subprocess.Popen) -> None:
    processes.stop(process, grace=30)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(driver):
    """Debian's Chromium, headless, reaching nothing outside (a browser download cannot work here)."""
    import shutil

    return driver.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)


def visit(url: str) -> None:
    """Open the app once in headless Chromium: Streamlit runs app.py (and starts its worker) per browser session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = launch_chromium(driver)
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("heading", name="Experiments").wait_for(timeout=30_000)
        browser.close()
