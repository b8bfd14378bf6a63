"""Writes docs/ui.png, the README's picture of the judge page: the demo judge (or ``--model M``)
behind `create_ui_app`, a pairwise sample judged with swap and explanation in headless Chromium.

    PYTHONPATH=. python docs/ui_screenshot.py [--model M] [--out docs/ui.png]

Needs what the browser tests need (chromium, chromium-driver, selenium); it drives the page with
their helper, tests/browser.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import Page, chrome  # noqa: E402

from judgelm import Judge  # noqa: E402
from judgelm.serve import BackgroundServer  # noqa: E402
from judgelm.ui import create_ui_app  # noqa: E402

SAMPLE = {
    "question": "How many legs does a spider have?",
    "answer-1": "Spiders have six legs, like all insects.",
    "answer-2": "A spider has eight legs; spiders are arachnids, not insects.",
    "reference": "Eight.",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="the judge (default: the SmolLM2 demo judge)")
    p.add_argument("--out", default=str(ROOT / "docs" / "ui.png"))
    p.add_argument("--max-new-tokens", default="48", help="explanation budget")
    args = p.parse_args()
    judge = Judge.from_pretrained(args.model)
    driver = chrome(Path(tempfile.mkdtemp()))
    try:
        with BackgroundServer(create_ui_app(judge)) as srv:
            page = Page(driver, srv.url, Path(tempfile.mkdtemp())).open()
            for testid, text in SAMPLE.items():
                page.type(testid, text)
            page("swap").click()
            page("explain").click()
            page.type("max-new-tokens", args.max_new_tokens)
            page("judge").click()
            page.wait_state("verdict", "judged", "abstained", "error", timeout=600)
            driver.save_screenshot(args.out)
    finally:
        driver.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
