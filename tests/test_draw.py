"""The Tk drawing window for real: an X server (Xvfb), mouse and key events, live digits servers.

Digits are drawn by dragging the mouse along strokes traced from MNIST test
digits (tests/strokes.py), the way a person would draw them. The tests read
what the window knows from ``app.state``, not from widget texts.
Set UPDATE_SCREENSHOT=1 to refresh docs/tk-client.png, docs/tk-client-number.png and docs/tk-client-lines.png
from the screenshot tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import tkinter as tk
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
import pytest
from PIL import Image, ImageFilter

from clients import preprocessing
from clients.cli import main as digits
from clients.connection import Answer, ConnectionOptions
from clients.draw import DrawApp
from clients.draw.state import BRUSH_MAX, DrawState, Level, Message, Picture, Reading, Status
from clients.draw.worker import NumberRead, Request
from clients.drawing import DISPLAY_PEN, Drawing
from clients.numbers import Number, NumberError
from clients.output import not_sure
from digitserve.v1 import digits_pb2 as pb
from tests.conftest import ROOT, free_port, require_system_package
from tests.strokes import traced_drawing

# MNIST test-set indices of digits that, traced into strokes, the default model gets right.
SEVEN, TWO, ONE, FOUR, ZERO = 0, 1, 2, 4, 10
UNREACHABLE = "127.0.0.1:9"  # the discard port: nothing listens there
STATUS_BOUND = 3.0  # seconds within which the status bar must show that the server went away
RECONNECT_BOUND = 10.0  # ... and that it is back (the channel's reconnect backoff sets the pace)


@pytest.fixture(scope="module")
def display() -> str:
    """A private X server for this module's windows; DISPLAY points at it meanwhile."""
    require_system_package(shutil.which("Xvfb") is not None, "xvfb", "DIGITS_REQUIRE_DISPLAY",
                           "the Tk client's tests")
    for n in range(90, 100):
        if Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
            continue
        xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1440x900x24", "-nolisten", "tcp"],
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

    def _open(address: str, model: str = "", **options) -> DrawApp:
        root = tk.Tk()
        refresh = options.pop("refresh_seconds", 3.0)
        app = DrawApp(root, ConnectionOptions(address=address, **options), model, refresh_seconds=refresh)
        apps.append(app)
        pump(app, root.winfo_viewable, "the window to be mapped")  # event_generate needs a mapped window
        root.focus_force()
        root.update()
        return app

    yield _open
    for app in apps:
        app.quit()


def pump(app: DrawApp, done: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Run the Tk loop until ``done()``; the seconds it took. Fails saying what the window knows."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            s = app.state
            pytest.fail(f"timed out waiting for {what}; result {s.result and s.result.digit!r}, "
                        f"message {s.message.text!r}, status {s.status.value!r}, models {s.models}")
        app.root.update()
        time.sleep(0.01)
    app.root.update()
    return time.monotonic() - start


def drag(app: DrawApp, drawing: Drawing, release: bool = True) -> None:
    """Draw with the mouse: press, drag through each stroke's points, release."""
    canvas = app.canvas
    for stroke in drawing.strokes:
        points = [(round(x), round(y)) for x, y in stroke.points]
        canvas.event_generate("<ButtonPress-1>", x=points[0][0], y=points[0][1])
        app.root.update()
        for x, y in points[1:]:
            canvas.event_generate("<B1-Motion>", x=x, y=y)
            app.root.update()
        if release:
            canvas.event_generate("<ButtonRelease-1>", x=points[-1][0], y=points[-1][1])
            app.root.update()


def key(app: DrawApp, sequence: str) -> None:
    app.canvas.event_generate(sequence)
    app.root.update()


def model_names(app: DrawApp) -> list[str]:
    return sorted(m.name for m in app.state.models)


def connected(app: DrawApp) -> None:
    pump(app, lambda: app.state.status is Status.CONNECTED and app.state.models, "the model list")


def answered(app: DrawApp) -> None:
    pump(app, lambda: not app.busy and app.state.result is not None, "an answer")


def ink_items(app: DrawApp) -> tuple[int, ...]:
    return app.canvas.find_withtag("ink")


def assert_answer(app: DrawApp, label: int) -> None:
    result = app.state.result
    assert result is not None and result.digit == label, result
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(result.pixels, app.state.vector())  # the answer is about what is shown
    assert app.state.status is Status.CONNECTED and app.state.round_trip_ms is not None


# --- the state, without a window -------------------------------------------------------------


def test_every_change_is_undoable_and_redo_walks_forward_until_the_next_change():
    state = DrawState(address="here:1")
    assert not state.clear() and not state.undo() and not state.redo()
    state.begin_stroke(10, 10)
    state.extend_stroke(20, 20)
    state.brush.resized(30)
    state.brush.erase = True
    state.begin_stroke(15, 15)
    assert [(s.width, s.erase) for s in state.drawing.strokes] == [(DISPLAY_PEN, False), (30, True)]
    first, both = state.drawing.strokes[:1], list(state.drawing.strokes)
    epoch = state.epoch
    assert state.clear() and state.is_empty and state.epoch == epoch + 1
    assert state.undo() and state.drawing.strokes == both
    assert state.undo() and state.drawing.strokes == first
    assert state.redo() and state.drawing.strokes == both
    state.brush.erase = False
    state.begin_stroke(1, 1)  # a new change: the cleared state cannot be redone any more
    assert not state.can_redo and len(state.drawing.strokes) == 3
    state.brush.resized(1000)
    assert state.brush.width == BRUSH_MAX


def test_a_picture_replaces_the_drawing_until_the_pen_touches_it():
    state = DrawState(address="here:1")
    state.begin_stroke(10, 10)
    drawn = list(state.drawing.strokes)
    picture = Picture(Path("seven.png"), Image.new("L", (28, 28)), np.full(784, 7, np.uint8))
    state.open_picture(picture)
    assert state.drawing.strokes == [] and state.vector() is picture.vector
    state.begin_stroke(50, 50)
    assert state.picture is None and len(state.drawing.strokes) == 1
    assert state.undo() and state.picture is picture
    assert state.undo() and state.picture is None and state.drawing.strokes == drawn


def test_digits_drawn_with_the_mouse_are_recognised_on_the_return_key(server, open_app, test_digits):
    images, labels = test_digits
    app = open_app(server.address)
    connected(app)
    assert model_names(app) == ["ensemble", "knn", "rf", "svm"]
    assert app.state.default_model == "ensemble" and app.state.model == ""
    app.set_auto_predict(False)
    for index in (SEVEN, ONE, ZERO):
        drag(app, traced_drawing(images[index]))
        assert not app.busy and app.state.result is None
        key(app, "<Return>")
        answered(app)
        assert_answer(app, int(labels[index]))
        assert app.state.result.model == "ensemble" and "ensemble" in app.state.message.text
        key(app, "<Escape>")

    app.select_model("knn")  # nothing drawn: nothing asked
    drag(app, traced_drawing(images[SEVEN]))
    key(app, "<Return>")
    answered(app)
    assert_answer(app, 7)
    assert app.state.result.model == "knn"


def test_live_prediction_answers_while_the_pen_is_still_moving(server, open_app, test_digits):
    images, labels = test_digits
    app = open_app(server.address)
    connected(app)
    assert app.state.auto_predict  # on by default
    seven = traced_drawing(images[SEVEN])
    points = [(round(x), round(y)) for x, y in seven.strokes[0].points]
    half = len(points) // 2
    app.canvas.event_generate("<ButtonPress-1>", x=points[0][0], y=points[0][1])
    for x, y in points[1:half]:
        app.canvas.event_generate("<B1-Motion>", x=x, y=y)
    pump(app, lambda: app.state.result is not None, "an answer while the button is held")
    first = app.state.result.pixels
    np.testing.assert_array_equal(first, Drawing(strokes=[points[:half]]).to_vector())
    for x, y in points[half:]:  # the pen moves on, the button still held
        app.canvas.event_generate("<B1-Motion>", x=x, y=y)
    pump(app, lambda: not np.array_equal(app.state.result.pixels, first), "an answer about the longer stroke")
    app.canvas.event_generate("<ButtonRelease-1>", x=points[-1][0], y=points[-1][1])
    answered(app)
    assert_answer(app, int(labels[SEVEN]))  # and the last one is about the finished drawing

    for index in (ONE, ZERO):
        app.clear()
        drag(app, traced_drawing(images[index]))
        answered(app)
        assert_answer(app, int(labels[index]))


class GatedConnection:
    """Stands in for Connection: ready at once, lists one model, holds every Predict until the gate opens."""

    gate = threading.Event()
    sent: list[np.ndarray] = []

    def __init__(self, options: ConnectionOptions):
        self.options = options

    def watch(self, on_change) -> None:
        on_change(grpc.ChannelConnectivity.READY)

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
    monkeypatch.setattr("clients.draw.worker.Connection", GatedConnection)
    monkeypatch.setattr(GatedConnection, "gate", threading.Event())
    monkeypatch.setattr(GatedConnection, "sent", [])
    app = open_app("gated:1")
    connected(app)
    app.set_auto_predict(False)
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
    newest = app.state.vector()
    assert app.busy and len(GatedConnection.sent) == 1
    GatedConnection.gate.set()
    pump(app, lambda: not app.busy, "the newest answer")
    assert len(GatedConnection.sent) == 2
    np.testing.assert_array_equal(GatedConnection.sent[1], newest)
    np.testing.assert_array_equal(app.state.result.pixels, newest)
    assert app.state.result.digit == 3


def test_undo_redo_and_an_undoable_clear(server, open_app, test_digits):
    images, _ = test_digits
    app = open_app(server.address)
    app.set_auto_predict(False)
    four = traced_drawing(images[FOUR])
    assert len(four.strokes) == 2
    drag(app, four)
    drawn = list(app.state.drawing.strokes)
    assert len(drawn) == 2 and len(ink_items(app)) == 2

    key(app, "<Control-z>")
    assert app.state.drawing.strokes == drawn[:1] and len(ink_items(app)) == 1
    assert app.canvas.coords(ink_items(app)[0]) == pytest.approx([c for p in drawn[0].points for c in p])
    key(app, "<Control-Z>")  # Ctrl+Shift+Z
    assert app.state.drawing.strokes == drawn and len(ink_items(app)) == 2
    key(app, "<Control-z>")
    key(app, "<Control-y>")
    assert app.state.drawing.strokes == drawn and not app.state.can_redo

    key(app, "<Return>")
    answered(app)
    key(app, "<Escape>")  # clear: the canvas and the answer go ...
    assert app.state.is_empty and ink_items(app) == () and app.state.result is None
    key(app, "<Control-z>")  # ... and come back
    assert app.state.drawing.strokes == drawn and len(ink_items(app)) == 2
    key(app, "<Control-y>")
    assert app.state.is_empty

    key(app, "<Control-z>")
    key(app, "<Control-z>")  # before the second stroke of the 4
    drag(app, traced_drawing(images[ONE]))  # a new stroke: what was undone cannot be redone
    assert not app.state.can_redo and not app.redo()
    assert app.state.drawing.strokes[0] == drawn[0] and len(app.state.drawing.strokes) == 2
    while app.undo():
        pass
    assert app.state.is_empty and ink_items(app) == ()
    key(app, "<Control-z>")  # nothing left to undo: harmless
    assert app.state.is_empty


def test_pen_size_from_the_wheel_and_the_slider_and_an_eraser(server, open_app, test_digits, tmp_path):
    images, labels = test_digits
    app = open_app(server.address)
    connected(app)
    app.set_auto_predict(False)
    start = app.state.brush.width
    app.canvas.event_generate("<Button-4>", x=140, y=140)  # wheel up
    app.canvas.event_generate("<Button-4>", x=140, y=140)
    app.root.update()
    assert app.state.brush.width == start + 4
    app.canvas.event_generate("<Button-5>", x=140, y=140)  # wheel down
    app.root.update()
    assert app.state.brush.width == start + 2
    app.set_brush_width(1000)  # the slider's end
    assert app.state.brush.width == 48
    app.set_brush_width(10)

    one = traced_drawing(images[ONE])
    drag(app, one)
    assert app.state.drawing.strokes[-1].width == 10
    line = app.canvas.find_withtag("ink")[-1]
    assert float(app.canvas.itemcget(line, "width")) == 10
    whole = app.state.vector()

    # The eraser paints over the middle of the 1: what is sent has a gap there.
    key(app, "<e>")
    assert app.state.brush.erase
    app.set_brush_width(40)
    ys = [y for _x, y in one.strokes[0].points]
    middle = (min(ys) + max(ys)) / 2
    drag(app, Drawing(strokes=[[(60.0, middle), (220.0, middle)]]))
    stroke = app.state.drawing.strokes[-1]
    assert stroke.erase and stroke.width == 40
    assert app.canvas.itemcget(ink_items(app)[-1], "fill") == "#ffffff"
    erased = app.state.vector()
    assert not np.array_equal(erased, whole)
    png = tmp_path / "erased.png"
    assert app.save_to(png)
    saved = np.asarray(Image.open(png).convert("L"))
    column = int(round(np.mean([x for x, _y in one.strokes[0].points])))
    assert saved[int(middle), column - 3:column + 4].min() > 200  # the gap is in the picture too
    assert saved[int(min(ys)) + 5, :].min() < 60

    key(app, "<Control-z>")  # the eraser stroke is undone like any other
    np.testing.assert_array_equal(app.state.vector(), whole)
    key(app, "<Return>")
    answered(app)
    assert_answer(app, int(labels[ONE]))

    app.set_brush_width(48)  # erasing everything leaves nothing to ask about
    for x in range(0, 281, 20):
        drag(app, Drawing(strokes=[[(float(x), 0.0), (float(x), 280.0)]]))
    assert not app.predict_now()
    assert app.state.result is None and "Nothing left" in app.state.message.text
    key(app, "<e>")
    assert not app.state.brush.erase


def test_an_unreachable_server_says_disconnected_and_the_window_keeps_working(open_app, test_digits):
    images, _ = test_digits
    app = open_app(UNREACHABLE, retries=0)
    took = pump(app, lambda: app.state.status is Status.DISCONNECTED, "the disconnected status")
    assert took < STATUS_BOUND
    assert app.state.models == []

    drag(app, traced_drawing(images[SEVEN]))
    assert not app.state.is_empty and ink_items(app)
    key(app, "<Return>")
    pump(app, lambda: not app.busy, "the failed prediction")
    assert app.state.result is None and app.state.message.level is Level.ERROR
    assert "unreachable" in app.state.message.text and UNREACHABLE in app.state.message.text
    key(app, "<Escape>")
    assert app.state.is_empty and ink_items(app) == ()


def test_server_gone_says_disconnected_at_once_and_back_predicts_the_drawing_again(serve, models_copy,
                                                                                     open_app, test_digits):
    images, _ = test_digits
    port = free_port()
    running = serve(models_copy, port=port).running
    app = open_app(f"127.0.0.1:{port}", retries=0)  # fails at once while away (retries: the next test)
    connected(app)
    drag(app, traced_drawing(images[SEVEN]))
    answered(app)
    assert_answer(app, 7)

    running.stop(grace=0)
    took = pump(app, lambda: app.state.status is Status.DISCONNECTED, "the disconnected status")
    assert took < STATUS_BOUND  # without any call being made

    key(app, "<Escape>")
    drag(app, traced_drawing(images[TWO]))  # drawn while the server is away: no answer yet
    pump(app, lambda: not app.busy, "the prediction to fail")
    assert app.state.result is None and "unreachable" in app.state.message.text

    serve(models_copy, port=port)
    pump(app, lambda: app.state.status is Status.CONNECTED, "the reconnection", timeout=RECONNECT_BOUND)
    answered(app)  # nobody pressed anything: the window asked again by itself
    assert_answer(app, 2)
    assert app.state.message.level is Level.INFO


def test_retries_carry_a_prediction_over_a_server_restart(serve, models_copy, open_app, test_digits):
    """--retries reaches the window's calls: a prediction made while the server is down waits for it."""
    images, _ = test_digits
    port = free_port()
    app = open_app(f"127.0.0.1:{port}", retries=5)
    pump(app, lambda: app.state.status is Status.DISCONNECTED, "the disconnected status")
    app.set_auto_predict(False)
    drag(app, traced_drawing(images[SEVEN]))
    key(app, "<Return>")
    errors = []
    threading.Timer(0.4, lambda: serve(models_copy, port=port)).start()
    pump(app, lambda: errors.append(app.state.message.level is Level.ERROR) or app.state.result is not None,
         "the answer", timeout=15)
    assert not any(errors)  # the call waited and retried instead of reporting the server away
    assert_answer(app, 7)


def test_models_added_by_a_reload_appear_in_the_picker(serve, models_copy, open_app, tmp_path):
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in models_copy.glob("rf*"):
        path.rename(aside / path.name)
    serving = serve(models_copy)
    app = open_app(serving.address, refresh_seconds=1.0)
    connected(app)
    assert model_names(app) == ["ensemble", "knn", "svm"]

    for path in aside.iterdir():
        path.rename(models_copy / path.name)
    serving.stub.Reload(pb.ReloadRequest(), timeout=30)
    pump(app, lambda: "rf" in model_names(app), "rf in the picker", timeout=5)
    assert "rf" in app.view._picker.cget("values")[2]
    app.select_model("rf")
    assert app.state.model == "rf"


def test_strokes_saved_and_opened_again_predict_the_same(server, open_app, test_digits, tmp_path):
    images, _ = test_digits
    app = open_app(server.address)
    connected(app)
    assert not app.save_to(tmp_path / "empty.json")
    assert "Nothing to save" in app.state.notice.text

    drag(app, traced_drawing(images[TWO]))
    answered(app)
    assert_answer(app, 2)
    drawn, sent = Drawing.from_json(app.state.drawing.to_json()), app.state.result.pixels
    path = tmp_path / "two.json"
    assert app.save_to(path)
    assert Drawing.load(path) == drawn and app.state.notice.text == "Saved two.json"
    assert not app.save_to(tmp_path / "two.txt")
    assert ".json (strokes) or .png (image)" in app.state.notice.text

    key(app, "<Escape>")
    assert app.open_from(path)
    assert app.state.drawing == drawn and len(ink_items(app)) == len(drawn.strokes)
    answered(app)
    assert_answer(app, 2)
    np.testing.assert_array_equal(app.state.result.pixels, sent)

    broken = tmp_path / "broken.json"
    broken.write_text('{"canvas": [280, 280], "strokes": [[[1, "a"]]]}')
    assert not app.open_from(broken)
    assert "strokes[0][0]" in app.state.notice.text and app.state.notice.level is Level.ERROR
    assert app.state.drawing == drawn  # a bad file changes nothing


def test_a_saved_png_and_a_photo_open_as_pictures_and_are_recognised(server, open_app, test_digits, tmp_path):
    images, labels = test_digits
    app = open_app(server.address)
    connected(app)
    drag(app, traced_drawing(images[TWO]))
    answered(app)
    png = tmp_path / "two.png"
    assert app.save_to(png)
    assert Image.open(png).size == (280, 280)
    drawn = list(app.state.drawing.strokes)

    # A photo: the digit in dark ink on grey paper, lit unevenly, blurred and saved as JPEG.
    digit = Image.fromarray(255 - images[SEVEN].reshape(28, 28)).resize((240, 240), Image.Resampling.BICUBIC)
    paper = np.asarray(digit, np.float64) * 0.7 + 50 + np.linspace(0, 25, 240)[None, :]
    photo = tmp_path / "seven.jpg"
    Image.fromarray(paper.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1)).convert("RGB").save(
        photo, quality=85)

    for path, label in ((photo, labels[SEVEN]), (png, 2)):
        assert app.open_from(path)
        assert app.state.picture is not None and app.state.drawing.strokes == []
        assert app.canvas.find_withtag("picture") and ink_items(app) == ()
        answered(app)
        assert_answer(app, int(label))
        np.testing.assert_array_equal(app.state.result.pixels, preprocessing.prepare(path))
        assert app.state.notice.text == f"Opened {path.name}"

    drag(app, traced_drawing(images[ONE]))  # drawing on a picture starts a new drawing
    assert app.state.picture is None and not app.canvas.find_withtag("picture")
    assert len(ink_items(app)) == len(app.state.drawing.strokes) == 1
    key(app, "<Control-z>")  # ... and undo brings the picture back
    assert app.state.picture is not None and app.state.picture.path == png
    key(app, "<Control-z>")
    key(app, "<Control-z>")
    assert app.state.drawing.strokes == drawn

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("seven")
    assert not app.open_from(not_an_image)
    assert "notes.txt: not an image file" in app.state.notice.text
    assert app.state.drawing.strokes == drawn


def test_a_stroke_file_from_a_bigger_canvas_is_fitted_to_the_window(server, open_app, test_digits, tmp_path):
    images, _ = test_digits
    app = open_app(server.address)
    big = traced_drawing(images[ONE], size=400, canvas=(560, 560))
    big.save(tmp_path / "big.json")
    assert app.open_from(tmp_path / "big.json")
    assert (app.state.drawing.width, app.state.drawing.height) == (280, 280)
    np.testing.assert_array_equal(app.state.vector(), big.to_vector())
    answered(app)
    assert_answer(app, 1)


def test_draw_without_a_display_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert digits(["draw", "--server", UNREACHABLE]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digits draw: no display (set DISPLAY") and err.count("\n") == 1


def test_screenshot_of_a_recognised_digit(server, open_app, test_digits, tmp_path):
    images, _ = test_digits
    app = open_app(server.address)
    connected(app)
    drag(app, traced_drawing(images[TWO]))
    answered(app)
    assert_answer(app, 2)
    shot, canvas = screenshot(app, tmp_path / "tk-client.png")
    assert (np.asarray(canvas.convert("L")) < 64).mean() > 0.03  # the digit is on screen, in black ink


def screenshot(app: DrawApp, path: Path):
    """The window as the X server shows it, and its canvas; saved to ``path``, into docs/ too with UPDATE_SCREENSHOT=1."""
    from PIL import ImageGrab

    root = app.root
    root.update()
    time.sleep(0.2)  # let the X server finish painting
    root.update()
    box = (root.winfo_rootx(), root.winfo_rooty(),
           root.winfo_rootx() + root.winfo_width(), root.winfo_rooty() + root.winfo_height())
    shot = ImageGrab.grab(bbox=box, xdisplay=os.environ["DISPLAY"])
    assert shot.size == (root.winfo_width(), root.winfo_height())
    x, y = app.canvas.winfo_rootx() - box[0], app.canvas.winfo_rooty() - box[1]
    canvas = shot.crop((x, y, x + app.canvas.winfo_width(), y + app.canvas.winfo_height()))
    shot.save(path)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "docs" / path.name)
    return shot, canvas


def test_the_window_says_when_the_server_is_not_sure(server, open_app):
    app = open_app(server.address)
    connected(app)
    app.set_auto_predict(False)
    # A zigzag filling the canvas: no digit, and far from every training digit.
    drag(app, Drawing(strokes=[[(30 + 220 * (i % 2), 20 + 16 * i) for i in range(15)],
                               [(30 + 16 * i, 30 + 220 * (i % 2)) for i in range(15)]]))
    key(app, "<Return>")
    answered(app)
    assert app.state.result.doubt
    assert app.state.message.text.startswith("not sure: ") and app.state.message.level is Level.WARN
    assert app.view._digit_label.cget("text") == f"{app.state.result.digit}?"



def test_number_mode_reads_a_written_number_digit_by_digit(server, open_app, tmp_path, capsys):
    """Number mode: a wide canvas, a box and an answer per digit, copy, resize, save and read back."""
    from tests.conftest import run_digits
    from tests.test_numbers import _numbers

    app = open_app(server.address)
    pump(app, lambda: app.state.models, "the model list")
    app.set_number_mode(True)
    pump(app, lambda: app.canvas.winfo_width() > 280, "the wider canvas")
    width, height = app.state.drawing.width, app.state.drawing.height
    assert (width, height) == (app.canvas.winfo_width(), app.canvas.winfo_height()) and width > 2 * height

    label, _, drawing = next(_numbers(1, 4, "clear", seed=6))
    drag(app, drawing.fitted(width, height))
    pump(app, lambda: app.state.reading is not None and len(app.state.drawing.strokes) == len(drawing.strokes)
         and not app.busy, "the number")
    number = _only_number(app)
    assert len(number.digits) == 4 and number.text == label
    boxes = app.canvas.find_withtag("boxes")
    assert len(boxes) == 2 * 4  # a box and an answer above it per digit
    texts = [app.canvas.itemcget(i, "text") for i in boxes if app.canvas.type(i) == "text"]
    assert "".join(t.rstrip("?") for t in texts) == label
    assert "sure" in app.state.message.text
    place = number.most_doubtful()  # the panel beside shows it: a doubted digit, else the least sure
    shown = number.digits[place]
    assert shown.pixels is not None and shown.pixels.reshape(-1).shape == (784,) and shown.pixels.any()
    why = not_sure(shown.probabilities, shown.doubt) if shown.doubt else "least sure"
    assert app.view._sent_caption.cget("text") == f"digit {place + 1} of 4, {why}"

    assert app.copy_number() and app.root.clipboard_get() == label

    app.root.geometry(f"{app.root.winfo_width() + 200}x{app.root.winfo_height()}")  # the canvas follows the window
    pump(app, lambda: app.state.drawing.width == app.canvas.winfo_width() > width, "the resized canvas")

    path = tmp_path / "number.json"
    assert app.save_to(path)
    proc = run_digits(capsys, "predict", "--server", server.address, "--number", "--format", "json", str(path))
    assert json.loads(proc.stdout)[0]["number"] == label

    app.clear()
    pump(app, lambda: app.state.reading is None and not app.canvas.find_withtag("boxes"), "an empty canvas")
    assert app.open_from(path)
    pump(app, lambda: app.state.reading is not None and not app.busy, "the opened number")
    assert _only_number(app).text == label

    app.set_number_mode(False)  # back to one digit on the square canvas, the strokes fitted to it
    pump(app, lambda: app.canvas.winfo_width() == 280, "the square canvas")
    assert app.state.reading is None and app.state.drawing.width == 280


@pytest.mark.parametrize("chars, between", [(".,-", False), (":", False), ("-", True), ("/", False), ("+", False)],
                         ids=["point", "colon", "hyphen", "date", "plus"])
def test_number_mode_writes_a_sign_where_it_was_drawn(server, open_app, chars, between):
    """An amount written with a click for its decimal point, a time with two for its colon, a phone number
    with a short drag for its hyphen or two crossing ones for its plus, a date with its slashes: each sign
    is boxed and shown above, the number line and the clipboard carry it where it stands."""
    from tests.test_numbers import _amounts, _written

    app = open_app(server.address)
    _number_mode(app)
    if chars == "/":  # slashes leaning clearly past the digits (the lean they are told by)
        label, drawing = "12/05/2026", _written("12/05/2026")[1]
    else:
        label, _, drawing = next(_amounts(1, seed=8, chars=chars, between=between))
    drag(app, drawing.fitted(app.state.drawing.width, app.state.drawing.height))
    pump(app, lambda: app.state.reading is not None and len(app.state.drawing.strokes) == len(drawing.strokes)
         and not app.busy, "the amount")
    number = _only_number(app)
    assert number.text == label and len(number.signs) == sum(not c.isdigit() for c in label), (number.text, label)
    assert app.view._digit_label.cget("text").replace("?", "") == label
    texts = [app.canvas.itemcget(i, "text") for i in app.canvas.find_withtag("boxes") if app.canvas.type(i) == "text"]
    assert sorted(t.rstrip("?") for t in texts) == sorted(label)  # an answer above every digit and the sign
    assert app.copy_number() and app.root.clipboard_get() == label


def test_number_mode_reads_each_line_of_two_written_one_above_the_other(server, open_app, tmp_path, capsys):
    """Two numbers written one above the other, or a picture of them opened: each line is read as a number
    of its own, boxed where it stands, shown a line each on the answer line and copied a line each; the
    saved stroke file reads back as the same two numbers with digits predict --number --lines."""
    from bench.numbers import one_above_other
    from tests.conftest import run_digits
    from tests.test_numbers import _numbers

    app = open_app(server.address)
    _number_mode(app)
    (top_label, top_picture, top), (bottom_label, bottom_picture, bottom) = _numbers(2, 3, "clear", seed=12)
    both = one_above_other(top, bottom)
    drag(app, both.fitted(app.state.drawing.width, app.state.drawing.height))
    pump(app, lambda: app.state.reading is not None and len(app.state.drawing.strokes) == len(both.strokes)
         and not app.busy, "the two lines")
    upper, lower = app.state.reading.lines
    _mostly(upper, top_label)
    _mostly(lower, bottom_label)
    assert max(d.box[3] for d in upper.digits) < min(d.box[1] for d in lower.digits)  # each line's boxes in its rows
    assert len(app.canvas.find_withtag("boxes")) == 2 * (len(top_label) + len(bottom_label))
    assert app.view._digit_label.cget("text") == f"{upper.marked}\n{lower.marked}"
    assert app.state.message.text.startswith("2 lines · ") and "sure" in app.state.message.text
    assert " in line " in app.view._sent_caption.cget("text")
    assert app.copy_number() and app.root.clipboard_get() == f"{upper.text}\n{lower.text}"
    saved = tmp_path / "lines.json"
    assert app.save_to(saved)
    proc = run_digits(capsys, "predict", "--server", server.address, "--number", "--lines", "--format", "json",
                      str(saved))
    assert [(r["index"], r["number"]) for r in json.loads(proc.stdout)] == [(0, upper.text), (1, lower.text)]
    # A line that cannot be read (read_lines gives its error): the other is shown and copied, this one is a "?"
    unread = NumberError("too many separate marks (40) for a number: at most 32 digits are read")
    app._events.put(NumberRead(Request(None, "", app.state.epoch), Reading((upper, unread)), 0.1))
    pump(app, lambda: app.state.reading.lines[1] is unread, "the unread line")
    assert app.view._digit_label.cget("text") == f"{upper.marked}\n?"
    assert app.state.message == Message(f"line 2 of 2: {unread}", Level.WARN)
    assert len(app.canvas.find_withtag("boxes")) == 2 * len(top_label)
    assert app.copy_number() and app.root.clipboard_get() == upper.text

    path = tmp_path / "lines.png"
    one_above_other(top_picture, bottom_picture).save(path)
    assert app.open_from(path)
    pump(app, lambda: app.state.reading is not None and app.state.picture is not None and not app.busy,
         "the picture's two lines")
    upper, lower = app.state.reading.lines
    _mostly(upper, top_label)
    _mostly(lower, bottom_label)
    height = app.state.drawing.height
    assert 0 <= max(d.box[3] for d in upper.digits) < min(d.box[1] for d in lower.digits) <= height


def test_number_mode_marks_a_scribble_the_model_doubts_and_shows_why(server, open_app):
    """Ink that is no digit, read with confidence but doubted: marked in orange with a ?, and the panel says why."""
    app = open_app(server.address)
    _number_mode(app)
    rng = np.random.default_rng(11)
    walk = np.cumsum(rng.normal(0, 14, size=(200, 2)), axis=0) + (150, 120)
    scribble = Drawing(1200, 240, [[tuple(p) for p in walk]]).fitted(app.state.drawing.width, app.state.drawing.height)
    drag(app, scribble)
    pump(app, lambda: app.state.reading is not None and not app.busy, "the scribble read")
    number = _only_number(app)
    doubted = [k for k, d in enumerate(number.digits) if d.doubt]
    assert doubted and all(number.digits[k].uncertain for k in doubted)
    place = number.most_doubtful()
    assert place in doubted
    caption = app.view._sent_caption.cget("text")
    assert caption.startswith(f"digit {place + 1} of {len(number.digits)}, not sure: ")
    assert app.view._digit_label.cget("text") == number.marked and number.marked.count("?") >= len(doubted)
    assert "unsure (?)" in app.state.message.text


def _mostly(number: Number, label: str) -> None:
    """Read as that many digits, all but at most one right (the test server's model is a small one)."""
    assert len(number.digits) == len(label) and sum(a != b for a, b in zip(number.text, label)) <= 1, \
        (number.text, label)


def _only_number(app) -> Number:
    """The number number mode read from writing in one line."""
    (number,) = app.state.reading.lines
    assert isinstance(number, Number), number
    return number


def _number_mode(app) -> None:
    pump(app, lambda: app.state.models, "the model list")
    app.set_number_mode(True)
    pump(app, lambda: app.canvas.winfo_width() > 280, "the wider canvas")


def test_number_mode_opens_a_picture_and_reads_the_whole_number(server, open_app, tmp_path):
    """Open in number mode: the picture fitted to the canvas, a box on each of its digits, the number read."""
    from tests.test_numbers import _numbers

    app = open_app(server.address)
    _number_mode(app)
    label, picture, _ = next(_numbers(1, 4, "clear", seed=6))
    path = tmp_path / "number.png"
    picture.save(path)
    assert app.open_from(path)
    pump(app, lambda: app.state.reading is not None and not app.busy, "the number in the picture")
    number = _only_number(app)
    assert len(number.digits) == 4 and sum(a == b for a, b in zip(number.text, label)) >= 3, (number.text, label)
    width, height = app.state.drawing.width, app.state.drawing.height
    assert app.state.picture.image.size == (width, height)
    ink = np.asarray(app.state.picture.image.convert("L")) < 128
    for digit in number.digits:  # every box is on the canvas and around ink of the picture shown there
        left, top, right, bottom = map(int, digit.box)
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert ink[top:bottom, left:right].mean() > 0.05
    assert len(app.canvas.find_withtag("boxes")) == 2 * 4 and app.canvas.find_withtag("picture")
    drag(app, Drawing(width, height, [[(40, 40), (60, 120)]]))  # the pen on it starts a new drawing
    pump(app, lambda: app.state.picture is None and not app.canvas.find_withtag("picture"), "the picture gone")


def test_number_mode_reads_a_photographed_number(server, open_app, tmp_path):
    """A phone's photo of a written number (lamp, shadow, the sheet on a grained table, blur, JPEG):
    opened in number mode, its digits are found on the sheet, not on the table."""
    from bench.photos import photo
    from tests.test_numbers import _numbers

    app = open_app(server.address)
    _number_mode(app)
    label, picture, _ = next(_numbers(1, 4, "clear", seed=6))
    path = tmp_path / "number.jpg"
    Image.fromarray(photo(255 - np.asarray(picture), "phone", np.random.default_rng(3))).save(path, quality=80)
    assert app.open_from(path)
    pump(app, lambda: app.state.reading is not None and not app.busy, "the number in the photo")
    number = _only_number(app)
    assert len(number.digits) == 4 and sum(a == b for a, b in zip(number.text, label)) >= 3, (number.text, label)


def test_screenshot_of_a_number_read_in_number_mode(server, open_app, tmp_path):
    from tests.test_numbers import _numbers

    app = open_app(server.address)
    _number_mode(app)
    label, _, drawing = next(_numbers(1, 4, "clear", seed=6))
    drag(app, drawing.fitted(app.state.drawing.width, app.state.drawing.height))
    pump(app, lambda: app.state.reading is not None and len(app.state.drawing.strokes) == len(drawing.strokes)
         and not app.busy, "the number")
    assert _only_number(app).text == label
    _, canvas = screenshot(app, tmp_path / "tk-client-number.png")
    assert (np.asarray(canvas.convert("L")) < 64).mean() > 0.01  # the number is on screen, in black ink


def test_screenshot_of_two_lines_read_in_number_mode(server, open_app, tmp_path):
    """A meter's reading with its serial number written small and close under it: two lines, each read."""
    from tests.test_numbers import _numbers

    app = open_app(server.address)
    _number_mode(app)
    (label, _, reading), (serial, _, under) = _numbers(2, 4, "clear", seed=6)
    ys = [y for stroke in reading.strokes for _, y in stroke.points]
    low, high = min(ys), max(ys)
    top = min(y for stroke in under.strokes for _, y in stroke.points)
    small = [[(x * 0.45 + 40, high + 0.3 * (high - low) + (y - top) * 0.45) for x, y in stroke.points]
             for stroke in under.strokes]
    both = Drawing(reading.width, reading.height + int(high - low), [s.points for s in reading.strokes] + small)
    drag(app, both.fitted(app.state.drawing.width, app.state.drawing.height))
    pump(app, lambda: app.state.reading is not None and len(app.state.drawing.strokes) == len(both.strokes)
         and not app.busy, "the two lines")
    upper, lower = app.state.reading.lines
    assert upper.text == label and len(lower.digits) == len(serial)
    _, canvas = screenshot(app, tmp_path / "tk-client-lines.png")
    assert (np.asarray(canvas.convert("L")) < 64).mean() > 0.01
