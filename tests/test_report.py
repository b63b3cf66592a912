"""``latchlab explain``'s report: its conclusions follow the data, and it works in a browser.

* The claims are computed: the same functions fed data in which the LSTM succeeds more often
  (or equally often) say so, with the Fisher p-value scipy gives.
* A tiny report (2 lengths, 2 repeats, N = 64, one epoch) renders in headless Chromium
  (Debian's ``chromium`` and ``chromium-driver``, installed by ``make test`` and
  ``.ci/run``) with no console errors, every image loaded and a screenshot that is not
  blank; a page with a broken image and a script error fails the same check.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latchlab.experiments import explain as report

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _final(k_srnn, k_lstm, n=20):
    rows = []
    for cell, k in (("srnn", k_srnn), ("lstm", k_lstm)):
        for i in range(n):
            rows.append({"split": "stratified", "cell": cell, "variant": cell, "T": 10 if i % 2 else 20,
                         "seed": i, "val_acc": 1.0 if i < k else 0.5})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("k_srnn, k_lstm, verdict, word", [
    (18, 4, "shown", "SRNN latches more often"),
    (4, 18, "shown", "LSTM latches more often"),
    (10, 9, "inconclusive", "inconclusive"),
])
def test_cell_claim_follows_the_data(k_srnn, k_lstm, verdict, word):
    f = report.cells_compared(_final(k_srnn, k_lstm))
    assert f.verdict == verdict and word in f.claim
    p = stats.fisher_exact([[k_srnn, 20 - k_srnn], [k_lstm, 20 - k_lstm]]).pvalue
    assert f"p = {p:.2g}" in f.claim or p < 1e-4


def _diag(bistable_when_ok: bool, n=12):
    """Diagnostics of 2 x n members; with ``bistable_when_ok`` False nothing separates the
    groups (equal gradient ratios across cells, equal forget gates, bistability by parity)."""
    rows = []
    for cell in ("srnn", "lstm"):
        for i in range(n):
            ok = i < n // 2
            for when in ("init", "final"):
                rows.append({"member_id": f"{cell}{i}", "cell": cell, "seed": i, "T": 20, "when": when, "success": ok,
                             "retention_mean": 0.7 if when == "init" or not bistable_when_ok else (0.9 if ok else 0.6),
                             "half_life": 2.0,
                             "grad_ratio_median": (1e-4 if cell == "lstm" and bistable_when_ok else 1e-1) * (1 + i),
                             "bistable": bool(when == "final" and (ok if bistable_when_ok else i % 2)),
                             "n_stable": 1, "recurrent": 1.0, "bias_retention": 1.0})
    return pd.DataFrame(rows)


def test_mechanism_claims_follow_the_data():
    f = report.mechanisms(_diag(True))
    p = stats.fisher_exact([[6, 0], [0, 6]]).pvalue
    assert f.verdict == "shown" and f"latched are bistable" in f.claim and f"p = {p:.2g}" in f.claim
    assert "0.70 of its cell state" in f.claim
    f = report.mechanisms(_diag(False))
    assert f.verdict == "inconclusive" and "inconclusive" in f.claim


# ----------------------------------------------------------------------------- in a browser

def _browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (see .ci/run and the Makefile)")
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them)")
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))


def check_page(driver, path: Path):
    """``(console errors, images not loaded, screenshot pixel std)`` of a page."""
    import matplotlib.image

    driver.get(path.resolve().as_uri())
    driver.execute_script("return document.readyState")
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
    n_img = driver.execute_script("return document.images.length")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    shot = matplotlib.image.imread(io.BytesIO(driver.get_screenshot_as_png()), format="png")
    return errors, broken, n_img, float(np.std(shot[..., :3]))


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain")
    path = report.explain("quick", out, protocol={"T": [3, 5], "repeats": 2, "N": 64, "epochs": 1},
                          landscape={"T_list": (5, 20), "N": 32, "points": 9})
    return path


def test_report_renders_in_chromium(tiny_report, tmp_path):
    text = tiny_report.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing to fetch
    for title in ("bug and its effect", "latch worse", "Ablations", "Loss landscapes", "Reproduce every number"):
        assert title in text
    driver = _browser(tmp_path)
    try:
        errors, broken, n_img, std = check_page(driver, tiny_report)
        assert errors == [] and broken == 0 and n_img >= 5 and std > 0.05, (errors, broken, n_img, std)
        bad = tmp_path / "bad.html"  # the check can fail: a broken image and a script error
        bad.write_text("<html><body><p>x</p><img src='data:image/png;base64,AAAA'>"
                       "<script>undefined_function()</script></body></html>")
        errors, broken, n_img, std = check_page(driver, bad)
        assert len(errors) >= 1 and broken == 1
        blank = tmp_path / "blank.html"
        blank.write_text("<html><body></body></html>")
        assert check_page(driver, blank)[3] < 0.01
    finally:
        driver.quit()
