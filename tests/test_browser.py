"""The report and the `dvc plots show` page, opened as a user would offline: in headless
Chromium, driven by Playwright, with no network at all (offline_page in tests/conftest.py).
A test fails on any console error or uncaught exception of the page. Each test saves a
screenshot of the page in its tmp_path, to look at when it fails."""

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

import pytest
from support import REPO, free_port

from pipeline.runtime import tracking
from pipeline.runtime.params import load_params
from pipeline.runtime.record import EXPERIMENT_TAGS, describe_run
from pipeline.stages import evaluate, train
from pipeline.tools.sweep_summary import Result, draw_accuracy, summarize, write_html_page

pytestmark = pytest.mark.slow

#: What DVC sets in an experiment's stages: the runs they log are the experiment's.
EXPERIMENT_VARIABLES = tuple(EXPERIMENT_TAGS)

#: Every <img> of the page: its alt text and the width it decoded to (0: not loaded).
PICTURES = "[...document.images].map(image => ({alt: image.alt, width: image.naturalWidth}))"
#: Every Vega chart, by the id DVC gave its <div>: its drawn marks (SVG paths with a shape)
#: and its lines, and every text it shows (title, axis titles and labels, legends).
CHARTS = """Object.fromEntries([...document.querySelectorAll(".vega-embed")].map(chart => [
    chart.id,
    {
        marks: [...chart.querySelectorAll("svg .role-mark path")]
            .filter(path => (path.getAttribute("d") || "").length > 0).length,
        lines: chart.querySelectorAll("svg .mark-line path").length,
        dashes: [...chart.querySelectorAll("svg .mark-line path")]
            .map(path => path.getAttribute("stroke-dasharray") || "solid"),
        colours: [...chart.querySelectorAll("svg .mark-line path")]
            .map(path => path.getAttribute("stroke")),
        text: [...chart.querySelectorAll("svg text")].map(text => text.textContent),
        marked: [...chart.querySelectorAll("svg .mark-text.role-mark text")].map(text => text.textContent),
    },
]))"""
#: How DVC's page draws a chart into the <div> of that id (vega-embed then empties the <div>).
DRAW_CALL = re.compile(r"vegaEmbed\('#([^']+)'")


def test_the_browser_reaches_no_server_not_even_one_on_this_machine(
    offline_page, browser_errors, tmp_path
) -> None:
    requests: list[str] = []

    class Script(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = b"window.reached = true;"
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet: the requests list is the record."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Script)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/remote.js"
    page = tmp_path / "remote.html"
    page.write_text(f'<!DOCTYPE html><script src="{url}"></script>')
    try:
        # Any other process on this machine gets the script (no proxy in between) ...
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url) as reply:
            assert reply.read() == b"window.reached = true;"
        requests.clear()
        # ... the browser cannot even send the request.
        offline_page.goto(page.as_uri())
        reached = offline_page.evaluate("window.reached === true")
        fetched = offline_page.evaluate(
            f"fetch('{url}').then(() => 'fetched', error => error.name)"
        )
    finally:
        server.shutdown()
        server.server_close()

    assert not reached
    assert fetched == "TypeError"
    assert requests == []
    # The page's only errors: the script and the fetch could not load.
    assert browser_errors, "the failed loads were not logged"
    assert all("Failed to load resource: net::ERR_" in e and url in e for e in browser_errors), (
        browser_errors
    )
    browser_errors.clear()


def test_every_picture_of_the_report_loads_offline(
    reproduced_template, offline_page, tmp_path
) -> None:
    variants = reproduced_template.params()["models"]
    offline_page.goto((reproduced_template.root / "data" / "report" / "index.html").as_uri())
    pictures = offline_page.evaluate(PICTURES)
    screenshot = tmp_path / "report.png"
    offline_page.screenshot(path=screenshot, full_page=True)

    assert pictures, f"the report shows no picture (see {screenshot})"
    assert [p["alt"] for p in pictures if p["width"] == 0] == [], f"not loaded (see {screenshot})"
    for name in variants:
        assert any(name in p["alt"] for p in pictures), f"no picture of {name} (see {screenshot})"


def test_dvc_plots_page_draws_every_chart_offline(reproduced_repo, offline_page, tmp_path) -> None:
    variants = list(reproduced_repo.params()["models"])
    reproduced_repo.run("dvc", "plots", "show")
    page = reproduced_repo.root / "dvc_plots" / "index.html"
    drawn_into = DRAW_CALL.findall(page.read_text())
    offline_page.goto(page.as_uri())
    assert offline_page.evaluate("Array.isArray(window.vegaCharts)"), (
        "dvc_plots/index.html is not made from .dvc/plots/page.html: is plots.html_template"
        " set in .dvc/config?"
    )
    outcomes = offline_page.evaluate(
        "Promise.allSettled(window.vegaCharts)"
        ".then(all => all.map(o => o.status === 'fulfilled' ? 'drawn' : String(o.reason)))"
    )
    charts = offline_page.evaluate(CHARTS)
    pictures = offline_page.evaluate(PICTURES)
    screenshot = tmp_path / "dvc_plots.png"
    offline_page.screenshot(path=screenshot, full_page=True)
    seen = f"(see {screenshot})"

    assert outcomes == ["drawn"] * len(drawn_into), f"charts that failed: {outcomes} {seen}"
    assert sorted(charts) == sorted(drawn_into), seen
    empty = [name for name, chart in charts.items() if not chart["marks"]]
    assert empty == [], (
        f"charts with nothing drawn {seen}; the curves come from data/report/curves.csv, which"
        " the report stage writes (pipeline.library.history.write_curves)"
    )
    assert pictures and all(p["width"] > 0 for p in pictures), f"pictures not loaded {seen}"

    assert "validation_accuracy" in charts, (
        f"no chart of every variant's validation accuracy among {sorted(charts)} {seen}: the"
        " report stage writes data/report/curves.csv (pipeline.library.history.write_curves)"
    )
    all_variants = charts["validation_accuracy"]
    assert all_variants["lines"] == len(variants), f"one line per variant {seen}"
    # Curves lying on each other (at 1.0) still show: a colour and a dash of each its own.
    assert len(set(all_variants["dashes"])) == len(variants), f"{all_variants['dashes']} {seen}"
    assert len(set(all_variants["colours"])) == len(variants), f"{all_variants['colours']} {seen}"
    assert {*variants, "validation accuracy", "epoch"} <= set(all_variants["text"])
    assert {"train", "validation", "accuracy"} <= set(charts["accuracy"]["text"])

    matrices = [chart for name, chart in charts.items() if name.startswith("data_predictions_")]
    assert len(matrices) == len(variants), f"one confusion matrix per variant {seen}"
    for variant in variants:
        matrix = charts[f"data_predictions_{variant}_csv"]
        labels = {"clockwise", "counter-clockwise", "actual class", "predicted class"}
        assert labels <= set(matrix["text"]), f"confusion axes read {matrix['text']} {seen}"
        # Every cell shows its count: the counts of the predictions file.
        rows = (reproduced_repo.root / f"data/predictions/{variant}.csv").read_text().splitlines()
        counts = Counter(tuple(row.split(",")[1:3]) for row in rows[1:])
        actual, predicted = ({pair[side] for pair in counts} for side in (0, 1))
        cells = [counts[(a, b)] for a in actual for b in predicted]  # those absent: 0
        shown = matrix["marked"]
        assert sorted(map(int, shown)) == sorted(cells), (
            f"the matrix of {variant} shows {shown}, the file holds {dict(counts)} {seen}"
        )


def test_the_link_make_ui_prints_shows_every_training_run_after_a_hundred_experiments(
    tmp_path, monkeypatch, loopback_page
) -> None:
    """After a sweep's worth of `dvc exp run`s (a sweep itself logs to an experiment of its
    own: tests/test_sweep.py), the experiment holds more newer runs than MLflow's UI lists on
    its first page (100): the link `make ui` prints still shows every training run of the
    pipeline's own, with no "Load more" between the reader and them."""
    params = load_params(REPO / "params.yaml")
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", *EXPERIMENT_VARIABLES):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def stage_run(stage, name: str) -> None:
        described = describe_run(stage, name, params, [])
        tracking.StageRun.start(described, REPO / "pipeline").end("FINISHED")

    for name in params.models:  # `dvc repro`: the committed results' training runs
        stage_run(train.STAGE, name)
    # 51 DVC experiments of a train and an evaluate run each, newer than the pipeline's.
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    for experiment in (f"noise-{point}" for point in range(51)):
        monkeypatch.setenv("DVC_EXP_NAME", experiment)
        stage_run(train.STAGE, "gru")
        stage_run(evaluate.STAGE, "gru")
    for variable in EXPERIMENT_VARIABLES:
        monkeypatch.delenv(variable)

    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipeline.tools.ui", str(port)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # the UI and its worker: stopped together
    )
    screenshot = tmp_path / "ui.png"
    try:
        link = next(line for line in ui.stdout if "MLflow UI for" in line).split(" open ")[1]
        link = link.split(" ")[0]
        while True:  # until the server answers (an observable event, polled)
            assert ui.poll() is None, "the UI exited"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read()
                break
            except OSError:
                time.sleep(0.2)
        loopback_page.goto(link)
        # The runs table has drawn once a run's name is a link in it.
        loopback_page.get_by_role("link", name="train@gru", exact=True).wait_for()
        loopback_page.screenshot(path=screenshot)
        shown = {
            name
            for name in params.models
            if loopback_page.get_by_role("link", name=f"train@{name}", exact=True).count() == 1
        }
        load_more = loopback_page.get_by_role("button", name="Load more").count()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait()

    assert shown == set(params.models), f"missing {set(params.models) - shown} (see {screenshot})"
    assert load_more == 0, f"a 'Load more' button (see {screenshot})"


def test_the_report_shows_the_noise_sweep_in_place_once_make_sweep_has_written_it(
    reproduced_template, offline_page, tmp_path
) -> None:
    """The same report bytes: a sentence on how to get the sweep before, its page after."""
    data = tmp_path / "data"
    shutil.copytree(reproduced_template.root / "data" / "report", data / "report")
    report = (data / "report" / "index.html").as_uri()
    offline_page.goto(report)
    sweep = offline_page.locator("#noise-sweep")
    assert "No noise sweep in this checkout yet" in sweep.inner_text()

    spreads = summarize(
        [Result("e1", 0.1, 21, "gru", 1.0), Result("e2", 0.6, 21, "gru", 0.875)], ["gru"]
    )
    page = data / "sweeps" / "noise" / "index.html"
    draw_accuracy(spreads, "datasets.fixed.noise", ["gru"], "A title", page.with_name("a.png"))
    write_html_page(page, "Sweep noise", page.with_name("a.png"), spreads, "noise", ["gru"])
    offline_page.goto(report)
    offline_page.screenshot(path=tmp_path / "report.png", full_page=True)
    frame = next(frame for frame in offline_page.frames if frame.url == page.as_uri())
    frame.wait_for_load_state()
    assert "0.875" in frame.inner_text("table")
    assert frame.evaluate("document.images[0].naturalWidth") > 0
    assert not offline_page.locator("#noise-sweep p", has_text="No noise sweep").is_visible()
