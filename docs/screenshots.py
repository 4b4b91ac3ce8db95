"""Screenshots of the dashboard's pages for the docs: `uv run python docs/screenshots.py`.

Run it while `make run` is up and data is flowing; it writes docs/img/<page>.png.
"""

from __future__ import annotations

from pathlib import Path

import typer
from playwright.sync_api import sync_playwright

PAGES = {
    "overview": "",
    "items": "items",
    "users": "users",
    "funnel": "funnel",
    "sessions": "sessions",
    "health": "health",
}
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def main(url: str = "http://127.0.0.1:8501", out: Path = Path(__file__).parent / "img") -> None:
    """Load each page, wait for its charts, and save a screenshot."""
    out.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        for name, path in PAGES.items():
            page.goto(f"{url}/{path}")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            page.wait_for_timeout(1_500)  # let the charts finish their transition
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            typer.echo(f"wrote {out / f'{name}.png'}")
        browser.close()


if __name__ == "__main__":
    typer.run(main)
