"""lib.running.browser in a real headless Chromium: a clean page passes, and each fault a reader would meet is reported
(console error, an image that does not decode, a broken link or anchor, the summary card below the first screen)."""
import base64

import pytest

from lib.running import browser

PNG = base64.b64encode(bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2210bc40000000049454e44ae426082")).decode()


def _site(tmp_path, report_body: str):
    (tmp_path / "index.html").write_text(
        "<html><body><h1>results</h1><section id='scorecard'><a href='nb/run/report.html#claim-a'>claim a</a>"
        f"<img src='data:image/png;base64,{PNG}'></section></body></html>")
    run = tmp_path / "nb" / "run"
    run.mkdir(parents=True)
    (run / "report.html").write_text(f"<html><body>{report_body}</body></html>")
    return tmp_path


CARD = "<div id='summary-card'><h2>Summary</h2><ul><li id='claim-a'>a</li></ul></div>"


def test_a_clean_site_passes_and_screenshots_are_saved(tmp_path, chromium):
    out = _site(tmp_path, CARD + "<a href='#claim-a'>here</a><p>text</p>")
    assert browser.check_site(out, tmp_path / "shots", chromium) == []
    shots = sorted(p.name for p in (tmp_path / "shots").glob("*.png"))
    assert shots == ["index.png", "nb__run.png"]
    assert (tmp_path / "shots" / "index.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("body,expected", [
    (CARD + "<script>console.error('boom')</script>", "console error: boom"),
    (CARD + "<script>undefinedFunction()</script>", "uncaught exception"),
    (CARD + "<img src='data:image/png;base64,AAAA'>", "image does not decode"),
    (CARD + "<img src='figures/missing.png'>", "image does not decode"),
    (CARD + "<a href='missing.html'>x</a>", "broken link missing.html"),
    (CARD + "<a href='#nowhere'>x</a>", "no element with id 'nowhere'"),
    ("<div style='height:3000px'></div>" + CARD, "#summary-card: not on the first screen"),
    ("<p>no card</p><ul><li id='claim-a'>a</li></ul>", "#summary-card: missing"),
])
def test_each_fault_is_reported(tmp_path, chromium, body, expected):
    out = _site(tmp_path, body)
    problems = browser.check_site(out, None, chromium)
    assert any(expected in p for p in problems), problems
    assert all("report.html" in p for p in problems)  # the index itself is clean


def test_an_anchor_missing_on_another_page_is_reported(tmp_path, chromium):
    out = _site(tmp_path, "<div id='summary-card'>no claims</div>")
    problems = browser.check_site(out, None, chromium)
    assert any("index.html" in p and "claim-a" in p for p in problems), problems
