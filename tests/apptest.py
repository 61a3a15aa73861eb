"""Streamlit's AppTest, made to run a page the way the app server does.

The server looks for installed custom components once, when it starts (`streamlit.runtime.Runtime`). Every new
AppTest looks again on its first `run()`, reading the metadata of every installed package: ~130 ms on this
machine, more than most of our pages take. Tests and benchmarks open a fresh AppTest per page view, so in one
process they keep the first look's answer, as the server does.
"""

import functools
import re

from streamlit.components.v2 import manifest_scanner


def scan_components_once() -> None:
    """From now on, in this process, every AppTest run reuses the first scan for components (idempotent)."""
    scan = manifest_scanner.scan_component_manifests
    if not isinstance(scan, functools._lru_cache_wrapper):
        manifest_scanner.scan_component_manifests = functools.cache(scan)


def as_shown(markdown: str) -> str:
    """An element's Markdown as the browser shows it: user text in messages is escaped (core.presenters.escape_markdown),
    which AppTest hands back as written."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")
