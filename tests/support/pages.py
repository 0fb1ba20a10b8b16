"""AppTest helpers of the page tests: open a page through the app's own navigation, read texts, find a button."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.support.data import ROOT

MAIN = str(ROOT / "app" / "main.py")


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in at.get(kind))


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
