"""The Tk drawing window for real: an X server (Xvfb), mouse and key events, live digits servers.

Digits are drawn by dragging the mouse along strokes traced from MNIST test
digits (tests/strokes.py), the way a person would draw them.
Set UPDATE_SCREENSHOT=1 to refresh docs/tk-client.png from the screenshot test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import tkinter as tk
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from clients.cli import main as digits
from clients.connection import Answer, ConnectionOptions
from clients.draw import DrawApp
from clients.drawing import Drawing
from digitserve.v1 import digits_pb2 as pb
from tests.conftest import ROOT, free_port, require_system_package
from tests.strokes import traced_drawing

# MNIST test-set indices of digits that, traced into strokes, the default model gets right.
SEVEN, TWO, ONE, FOUR, ZERO = 0, 1, 2, 4, 10
UNREACHABLE = "127.0.0.1:9"  # the discard port: nothing listens there


@pytest.fixture(scope="module")
def display() -> str:
    """A private X server for this module's windows; DISPLAY points at it meanwhile."""
    require_system_package(shutil.which("Xvfb") is not None, "xvfb", "DIGITS_REQUIRE_DISPLAY",
                           "the Tk client's tests")
    for n in range(90, 100):
        if Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
            continue
        xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while xvfb.poll() is None and not Path(f"/tmp/.X11-unix/X{n}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if xvfb.poll() is None and Path(f"/tmp/.X11-unix/X{n}").exists():
            break
        xvfb.kill()  # lost a race for this display number, or too slow: try the next
        xvfb.wait()
    else:
        pytest.fail("no free X display number among :90 to :99 for Xvfb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISPLAY", f":{n}")
        yield f":{n}"
    xvfb.terminate()
    xvfb.wait(timeout=10)


@pytest.fixture
def open_app(display) -> Callable[..., DrawApp]:
    """Open drawing windows against a server address; all are closed after the test."""
    apps: list[DrawApp] = []

    def _open(address: str, model: str = "") -> DrawApp:
        root = tk.Tk()
        app = DrawApp(root, ConnectionOptions(address=address), model)
        apps.append(app)
        pump(app, root.winfo_viewable, "the window to be mapped")  # event_generate needs a mapped window
        root.focus_force()
        root.update()
        return app

    yield _open
    for app in apps:
        app.quit()


def pump(app: DrawApp, done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Run the Tk loop until ``done()``; fail saying what the window shows if it takes too long."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; answer {app.answer_text()!r}, "
                        f"message {app.message_text()!r}, status {app.status_text()!r}")
        app.root.update()
        time.sleep(0.01)
    app.root.update()


def drag(app: DrawApp, drawing: Drawing) -> None:
    """Draw with the mouse: press, drag through each stroke's points, release."""
    canvas = app.canvas
    for stroke in drawing.strokes:
        points = [(round(x), round(y)) for x, y in stroke]
        canvas.event_generate("<ButtonPress-1>", x=points[0][0], y=points[0][1])
        app.root.update()
        for x, y in points[1:]:
            canvas.event_generate("<B1-Motion>", x=x, y=y)
            app.root.update()
        canvas.event_generate("<ButtonRelease-1>", x=points[-1][0], y=points[-1][1])
        app.root.update()


def key(app: DrawApp, sequence: str) -> None:
    app.canvas.event_generate(sequence)
    app.root.update()


def connected(app: DrawApp) -> None:
    pump(app, lambda: app.status_text().startswith("connected") and app.models(), "the model list")


def answered(app: DrawApp) -> None:
    pump(app, lambda: not app.busy and app.answer_text() != "", "an answer")


def ink_items(app: DrawApp) -> tuple[int, ...]:
    return app.canvas.find_withtag("ink")


def assert_answer(app: DrawApp, label: int) -> None:
    assert app.answer_text() == str(label), app.probability_values()
    probabilities = app.probability_values()
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    assert int(np.argmax(probabilities)) == label
    assert app.last_sent is not None
    np.testing.assert_array_equal(app.last_sent, app.drawing.to_vector())
    assert app.status_text().startswith("connected") and app.status_text().endswith(" ms")


def test_digits_drawn_with_the_mouse_are_recognised_on_the_return_key(server, open_app, test_digits):
    images, labels = test_digits
    app = open_app(server.address)
    connected(app)
    assert sorted(app.models()) == ["ensemble", "knn", "rf", "svm"]
    assert app.selected_model() == "ensemble"  # the server's default
    app.auto_predict = False
    for index in (SEVEN, ONE, ZERO):
        drag(app, traced_drawing(images[index]))
        assert not app.busy and app.answer_text() == ""
        key(app, "<Return>")
        answered(app)
        assert_answer(app, int(labels[index]))
        assert "ensemble" in app.message_text()
        key(app, "<Escape>")

    app.select_model("knn")  # the picker re-asks at once about what is drawn
    drag(app, traced_drawing(images[SEVEN]))
    key(app, "<Return>")
    answered(app)
    assert_answer(app, 7)
    assert "knn" in app.message_text()


def test_predict_as_you_draw_answers_after_the_mouse_is_released(server, open_app, test_digits):
    images, labels = test_digits
    app = open_app(server.address)
    connected(app)
    assert app.auto_predict  # on by default
    for index in (SEVEN, ONE, ZERO):
        app.clear()
        drag(app, traced_drawing(images[index]))
        answered(app)
        assert_answer(app, int(labels[index]))


class GatedConnection:
    """Stands in for Connection: lists one model at once, holds every Predict until the gate opens."""

    gate = threading.Event()
    sent: list[np.ndarray] = []

    def __init__(self, options: ConnectionOptions):
        self.options = options

    def list_models(self) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[pb.ModelInfo(name="gated", test_accuracy=0.5, default=True)],
                                     default_model="gated")

    def predict(self, images: np.ndarray, model: str = "") -> Answer:
        type(self).sent.append(images[0].copy())
        assert self.gate.wait(10)
        return Answer("gated", "1", np.eye(10, dtype=np.float32)[[3]])

    def close(self) -> None:
        pass


def test_a_slow_server_blocks_nothing_and_only_the_newest_drawing_is_sent_next(monkeypatch, open_app, test_digits):
    images, _ = test_digits
    monkeypatch.setattr("clients.draw.Connection", GatedConnection)
    monkeypatch.setattr(GatedConnection, "gate", threading.Event())
    monkeypatch.setattr(GatedConnection, "sent", [])
    app = open_app("gated:1")
    connected(app)
    app.auto_predict = False
    four = traced_drawing(images[FOUR])
    drag(app, Drawing(strokes=four.strokes[:1]))
    key(app, "<Return>")
    pump(app, lambda: len(GatedConnection.sent) == 1, "the first call to start")

    # While that call hangs the window keeps drawing; of the three requests made meanwhile only the last is sent.
    drag(app, Drawing(strokes=four.strokes[1:]))
    key(app, "<Return>")
    key(app, "<Control-z>")
    key(app, "<Return>")
    drag(app, traced_drawing(images[SEVEN]))
    key(app, "<Return>")
    newest = app.drawing.to_vector()
    assert app.busy and len(GatedConnection.sent) == 1
    GatedConnection.gate.set()
    pump(app, lambda: not app.busy, "the newest answer")
    assert len(GatedConnection.sent) == 2
    np.testing.assert_array_equal(GatedConnection.sent[1], newest)
    np.testing.assert_array_equal(app.last_sent, newest)
    assert app.answer_text() == "3"


def test_escape_clears_and_control_z_removes_exactly_the_last_stroke(server, open_app, test_digits):
    images, _ = test_digits
    app = open_app(server.address)
    app.auto_predict = False
    four = traced_drawing(images[FOUR])
    assert len(four.strokes) == 2
    drag(app, four)
    assert len(app.drawing.strokes) == 2 and len(ink_items(app)) == 2
    first = list(app.drawing.strokes[0])

    key(app, "<Control-z>")
    assert app.drawing.strokes == [first]
    assert len(ink_items(app)) == 1
    assert app.canvas.coords(ink_items(app)[0]) == pytest.approx([c for p in first for c in p])

    drag(app, four)
    key(app, "<Return>")
    answered(app)
    key(app, "<Escape>")
    assert app.drawing.is_empty and ink_items(app) == ()
    assert app.answer_text() == "" and app.last_sent is None and app.probability_values() == [0.0] * 10
    key(app, "<Control-z>")  # nothing left to undo: harmless
    assert app.drawing.is_empty


def test_an_unreachable_server_is_reported_and_the_window_keeps_working(open_app, test_digits):
    images, _ = test_digits
    app = open_app(UNREACHABLE)
    pump(app, lambda: "unreachable" in app.status_text(), "the unreachable status")
    assert UNREACHABLE in app.status_text()
    assert "unreachable" in app.message_text().lower() and "Traceback" not in app.message_text()
    assert app.models() == []

    drag(app, traced_drawing(images[SEVEN]))
    assert not app.drawing.is_empty and ink_items(app)
    key(app, "<Return>")
    pump(app, lambda: not app.busy, "the failed prediction")
    assert app.answer_text() == "" and "unreachable" in app.message_text().lower()
    key(app, "<Escape>")
    assert app.drawing.is_empty and ink_items(app) == ()


def test_the_window_reconnects_by_itself_when_the_server_comes_back(serve, models_copy, open_app, test_digits):
    images, _ = test_digits
    port = free_port()
    running = serve(models_copy, port=port).running
    app = open_app(f"127.0.0.1:{port}")
    connected(app)
    app.auto_predict = False
    drag(app, traced_drawing(images[SEVEN]))
    key(app, "<Return>")
    answered(app)
    assert_answer(app, 7)

    running.stop(grace=0)
    key(app, "<Return>")
    pump(app, lambda: not app.busy, "the failed prediction")
    assert "unreachable" in app.status_text() and "unreachable" in app.message_text().lower()
    assert app.answer_text() == ""

    serve(models_copy, port=port)
    pump(app, lambda: app.status_text().startswith("connected"), "the reconnection", timeout=15)
    assert sorted(app.models()) == ["ensemble", "knn", "rf", "svm"]
    key(app, "<Return>")
    answered(app)
    assert_answer(app, 7)


def test_strokes_saved_and_opened_again_predict_the_same(server, open_app, test_digits, tmp_path):
    images, _ = test_digits
    app = open_app(server.address)
    connected(app)
    assert not app.save_to(tmp_path / "empty.json")
    assert "empty" in app.notice_text()

    drag(app, traced_drawing(images[TWO]))
    answered(app)
    assert_answer(app, 2)
    drawn, sent = Drawing.from_json(app.drawing.to_json()), app.last_sent
    path = tmp_path / "two.json"
    assert app.save_to(path)
    assert Drawing.load(path) == drawn

    key(app, "<Escape>")
    assert app.open_from(path)
    assert app.drawing == drawn and len(ink_items(app)) == len(drawn.strokes)
    answered(app)  # predict-as-you-draw asks about the opened drawing too
    assert_answer(app, 2)
    np.testing.assert_array_equal(app.last_sent, sent)

    broken = tmp_path / "broken.json"
    broken.write_text('{"canvas": [280, 280], "strokes": [[[1, "a"]]]}')
    assert not app.open_from(broken)
    assert "strokes[0][0]" in app.notice_text()
    assert app.drawing == drawn  # a bad file changes nothing


def test_a_stroke_file_from_a_bigger_canvas_is_fitted_to_the_window(server, open_app, test_digits, tmp_path):
    images, _ = test_digits
    app = open_app(server.address)
    big = traced_drawing(images[ONE], size=400, canvas=(560, 560))
    big.save(tmp_path / "big.json")
    assert app.open_from(tmp_path / "big.json")
    assert (app.drawing.width, app.drawing.height) == (280, 280)
    np.testing.assert_array_equal(app.drawing.to_vector(), big.to_vector())
    answered(app)
    assert_answer(app, 1)


def test_draw_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert digits(["draw", "--server", UNREACHABLE]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digits draw: no display (set DISPLAY") and err.count("\n") == 1


def test_screenshot_of_a_recognised_digit(server, open_app, test_digits, tmp_path):
    from PIL import ImageGrab

    images, _ = test_digits
    app = open_app(server.address)
    connected(app)
    drag(app, traced_drawing(images[TWO]))
    answered(app)
    assert_answer(app, 2)
    root = app.root
    root.update()
    time.sleep(0.2)  # let the X server finish painting
    root.update()
    box = (root.winfo_rootx(), root.winfo_rooty(),
           root.winfo_rootx() + root.winfo_width(), root.winfo_rooty() + root.winfo_height())
    shot = ImageGrab.grab(bbox=box, xdisplay=os.environ["DISPLAY"])
    assert shot.size == (root.winfo_width(), root.winfo_height())
    x, y = app.canvas.winfo_rootx() - box[0], app.canvas.winfo_rooty() - box[1]
    ink = np.asarray(shot.convert("L").crop((x, y, x + 280, y + 280)))
    assert (ink < 64).mean() > 0.03  # the digit is on screen, in black ink
    path = tmp_path / "tk-client.png"
    shot.save(path)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "docs" / "tk-client.png")
