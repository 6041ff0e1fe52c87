"""Open HTML pages in Debian's headless Chromium (playwright-python) and say what it saw.

Run as a program, inside a network namespace of its own (``unshare --net``, no interface
up), so that nothing the browser does can reach beyond this machine: Chromium probes the
network by itself. Playwright talks to the browser over a pipe, not a socket.

Input on stdin, JSON: ``{"pages": [{"html": PATH, "screenshot": PATH, "width": 1280}]}``;
output on stdout, JSON: one object per page with the console errors, every request the page
made, the document's width and, per plot, its box, visibility, axis labels and clipped
markers. The assertions are the test's (tests/test_render_browser.py).

The module is also where the test finds out whether a browser can be run here at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"

#: Nothing at start-up that talks to the outside: no QUIC, no background fetches, no
#: component updates, no sync, and a fresh profile per run.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: What the page reports of each plot, measured by the browser after layout.
_PLOTS_JS = """
() => [...document.querySelectorAll('svg.plot')].map(svg => {
  const r = svg.getBoundingClientRect();
  const texts = sel => [...svg.querySelectorAll(sel)].map(t => t.textContent.trim());
  const style = getComputedStyle(svg);
  return {
    cls: svg.getAttribute('class'),
    x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
    visible: style.display !== 'none' && style.visibility !== 'hidden' && r.width > 0
             && r.height > 0,
    x_label: texts('.x-label').join(''), y_label: texts('.y-label').join(''),
    x_ticks: texts('.x-tick'), y_ticks: texts('.y-tick'),
    clipped: [...svg.querySelectorAll('.marker.clipped')].map(g => {
      const b = g.getBoundingClientRect();
      return {text: g.textContent.trim(), left: b.left, right: b.right,
              inside: b.left >= r.left - 0.5 && b.right <= r.right + 0.5};
    }),
    bars: svg.querySelectorAll('rect[class^="bar"]').length,
  };
})
"""


#: Each table's right edge and whether it had to scroll inside its box.
_TABLES_JS = """
() => [...document.querySelectorAll('table')].map(t => {
  const r = t.getBoundingClientRect();
  const box = t.parentElement;
  return {right: r.right, scrolls: box.scrollWidth > box.clientWidth + 0.5};
})
"""


def unavailable() -> str | None:
    """Why the browser cannot be run here (None: it can)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (Debian's chromium: scripts/install-system-deps.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright-python is not installed (the test extra)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing"
    probe = subprocess.run(
        ["unshare", "--net", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def run(pages: list[dict[str, Any]], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Open ``pages`` in Chromium inside a fresh network namespace; what each one showed."""
    done = subprocess.run(
        ["unshare", "--net", sys.executable, __file__],
        input=json.dumps({"pages": pages}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the browser run failed ({done.returncode}):\n{done.stderr}")
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def _listen(page: Page) -> tuple[list[str], list[str]]:
    """The page's console errors and uncaught exceptions, and the URLs it requests, as they
    come."""
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    return errors, requests


def _inspect(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile,  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            for spec in pages:
                page = context.new_page()
                page.set_viewport_size({"width": int(spec.get("width", 1280)), "height": 900})
                errors, requests = _listen(page)
                url = Path(spec["html"]).resolve().as_uri()
                page.goto(url, wait_until="load")
                page.wait_for_timeout(300)  # anything late (a lazy fetch) gets its chance
                page.screenshot(path=spec["screenshot"], full_page=True)
                out.append(
                    {
                        "url": url,
                        "console_errors": errors,
                        "requests": [r for r in requests if r != url],
                        "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                        "viewport_width": page.evaluate("window.innerWidth"),
                        "plots": page.evaluate(_PLOTS_JS),
                        "tables": page.evaluate(_TABLES_JS),
                    }
                )
                page.close()
        finally:
            context.close()
    return out


if __name__ == "__main__":
    os.environ.pop("http_proxy", None)
    os.environ.pop("https_proxy", None)
    spec = json.load(sys.stdin)
    json.dump(_inspect(spec["pages"]), sys.stdout)
