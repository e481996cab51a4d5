"""The drawing window put together: what each action does to the state, the worker's answers, run().

The window records mouse drags into the state's :class:`~clients.drawing.Drawing`,
which is the source of truth: undo, redo, open and save work on it, the
canvas is redrawn from it, and ``Drawing.to_vector`` makes the 784 pixels
sent, so ``digits predict drawing.json`` predicts a saved file exactly as
the window did.
"""

from __future__ import annotations

import queue
import sys
import tkinter as tk
from dataclasses import replace
from pathlib import Path
from tkinter import filedialog


from clients import preprocessing
from clients.connection import ConnectionOptions, ServerError, ServerUnavailable
from clients.draw.state import DrawState, Level, Message, ModelChoice, Picture, Status, fit_to_canvas
from clients.draw.view import DrawView
from clients.draw.worker import (MODELS_REFRESH_SECONDS, Event, Failed, Listed, NumberRead, Predicted, Readiness,
                                 Request, Worker)
from clients.drawing import Drawing, DrawingError
from clients.numbers import Number
from clients.output import not_sure
from digitserve.v1 import digits_pb2 as pb

# Predict as you draw: at most one prediction per LIVE_MS while the pen moves, and one
# LIVE_MS after the last change, so the answer follows the pen without flooding the server.
LIVE_MS = 120
POLL_MS = 30
SAVE_TYPES = [("Strokes (JSON)", "*.json"), ("Image (PNG)", "*.png")]
OPEN_TYPES = [("Drawings and pictures", "*.json *.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp"),
              ("All files", "*")]


class DrawApp:
    """The drawing window on a Tk root the caller owns.

    The public methods are what the buttons, keys and mouse call, so tests
    drive the window the way a user does and read back ``state``.
    """

    def __init__(self, root: tk.Tk, options: ConnectionOptions, model: str = "",
                 refresh_seconds: float = MODELS_REFRESH_SECONDS):
        self.root = root
        self.state = DrawState(address=options.address, model=model)
        self._awaiting: Request | None = None
        self._live_id: str | None = None
        self._drawing_stroke = False
        self._last_dir = Path.cwd()
        self.view = DrawView(root, self, self.state)
        self._events: queue.Queue[Event] = queue.Queue()
        self._worker = Worker(options, self._events, refresh_seconds)
        self._poll_id: str | None = root.after(POLL_MS, self._poll)

    @property
    def canvas(self) -> tk.Canvas:
        return self.view.canvas

    @property
    def busy(self) -> bool:
        """A prediction is scheduled or on its way."""
        return self._awaiting is not None or self._live_id is not None

    # --- predictions ---------------------------------------------------------------------------

    def predict_now(self) -> bool:
        """Send what is shown for prediction; False (and a hint) when there is nothing to send."""
        self._cancel_live()
        if self.state.is_empty:
            self._say("Draw a digit first.")
            return False
        if self.state.number_mode:
            d, picture = self.state.drawing, self.state.picture
            self._awaiting = (Request(None, self.state.model, self.state.epoch, picture=picture.opened,
                                      placement=picture.placement) if picture
                              else Request(None, self.state.model, self.state.epoch,
                                           Drawing(d.width, d.height, d.strokes)))
            self._worker.predict(self._awaiting)
            return True
        try:
            vector = self.state.vector()
        except (DrawingError, preprocessing.PreprocessingError):  # all of it erased
            self.state.result = None
            self._say("Nothing left to recognise: draw a digit.")
            return False
        self._awaiting = Request(vector, self.state.model, self.state.epoch)
        self._worker.predict(self._awaiting)
        return True

    def _live(self) -> None:
        """With predict-as-you-draw on, predict soon unless a prediction is scheduled already."""
        if self.state.auto_predict and not self.state.is_empty and self._live_id is None:
            self._live_id = self.root.after(LIVE_MS, self._live_fire)

    def _live_fire(self) -> None:
        self._live_id = None
        self.predict_now()

    def _cancel_live(self) -> None:
        if self._live_id is not None:
            self.root.after_cancel(self._live_id)
            self._live_id = None

    # --- editing -------------------------------------------------------------------------------

    def pen_down(self, x: float, y: float) -> None:
        had_picture = self.state.picture is not None
        self.state.begin_stroke(x, y)
        self._drawing_stroke = True
        self.state.notice = Message()  # "Saved …" is about a drawing that is changing now
        if had_picture:
            self.view.remove_picture()
        self.view.show_stroke(self.state.drawing)
        self.view.show(self.state)
        self._live()

    def pen_move(self, x: float, y: float) -> None:
        if not self._drawing_stroke:
            return
        self.state.extend_stroke(x, y)
        self.view.show_stroke(self.state.drawing)
        self._live()

    def pen_up(self) -> None:
        if not self._drawing_stroke:
            return
        self._drawing_stroke = False
        self.view.end_stroke()
        self._live()

    def clear(self) -> None:
        """Empty the canvas and forget the answer, including one still on its way (Undo brings it back)."""
        if self.state.clear():
            self._replaced()

    def undo(self) -> bool:
        """Step back one change (a stroke, a clear, an opened file), and ask about what is shown then."""
        if not self.state.undo():
            return False
        self._replaced()
        return True

    def redo(self) -> bool:
        if not self.state.redo():
            return False
        self._replaced()
        return True

    def _replaced(self) -> None:
        """After the content changed wholesale: redraw it and ask about it."""
        self._cancel_live()
        self._drawing_stroke = False
        self._awaiting = None
        if self.state.result is None:  # otherwise the answer stays until the next one replaces it
            self.state.message = Message()
        self.view.show_canvas(self.state)
        self._live()

    def set_brush_width(self, width: float) -> None:
        self.state.brush.resized(width)
        self.view.show(self.state)

    def set_eraser(self, on: bool) -> None:
        self.state.brush.erase = on
        self.view.show(self.state)

    def set_auto_predict(self, on: bool) -> None:
        self.state.auto_predict = on
        if not on:
            self._cancel_live()
        self.view.show(self.state)

    def set_number_mode(self, on: bool) -> None:
        """Read whole numbers on a wider canvas, or single digits again; what is drawn stays, fitted."""
        if on == self.state.number_mode:
            return
        self._cancel_live()
        self._awaiting = None
        self.state.picture = None
        self.state.set_number_mode(on)
        self.view.set_number_mode(self.state)
        self.state.message = Message()
        self.view.show_canvas(self.state)
        self._live()

    def resize_canvas(self, width: int) -> None:
        """The window was resized: in number mode the canvas takes the new width."""
        if self.state.number_mode and width != self.state.drawing.width:
            self.state.resize(width)

    def copy_number(self) -> bool:
        """Put the numbers on display on the clipboard, a line each."""
        reading = self.state.reading
        if reading is None or not reading.numbers:
            return False
        self.root.clipboard_clear()
        self.root.clipboard_append(reading.text)
        self._notice(f"Copied {' and '.join(number.text for number in reading.numbers)}")
        return True

    def select_model(self, name: str) -> None:
        """Pick a model as the user would in the picker (it re-predicts what is shown)."""
        self.state.model = name
        self.view.show(self.state)
        if not self.state.is_empty:
            self.predict_now()

    # --- files ---------------------------------------------------------------------------------

    def save_to(self, path: str | Path) -> bool:
        """Write the strokes (.json) or the image (.png) to ``path``; problems are shown in the window."""
        path = Path(path)
        if self.state.drawing.is_empty:
            return self._notice("Nothing to save: draw a digit first.", Level.ERROR)
        try:
            self.state.drawing.save(path)
        except DrawingError as exc:
            return self._notice(str(exc), Level.ERROR)
        except OSError as exc:
            return self._notice(f"Cannot save {path.name}: {exc.strerror or exc}", Level.ERROR)
        self._notice(f"Saved {path.name}")
        return True

    def open_from(self, path: str | Path) -> bool:
        """Show a stroke file (.json) or a picture, and ask what it is (in number mode: the number); problems are shown."""
        path = Path(path)
        try:
            if path.suffix.lower() == ".json":
                self.state.open_drawing(Drawing.load(path))
            else:
                image = preprocessing.load_image(path)
                try:
                    vector = preprocessing.prepare(image)
                except preprocessing.PreprocessingError as exc:
                    raise preprocessing.PreprocessingError(f"{path}: {exc}") from None
                if self.state.number_mode:  # shown fitted to the canvas, read as opened
                    shown, placement = fit_to_canvas(image, self.state.drawing.width, self.state.drawing.height)
                    self.state.open_picture(Picture(path, shown, vector, image, placement))
                else:
                    self.state.open_picture(Picture(path, image, vector))
        except (DrawingError, preprocessing.PreprocessingError) as exc:
            return self._notice(str(exc), Level.ERROR)
        self._replaced()
        self._notice(f"Opened {path.name}")
        self.predict_now()
        return True

    def save_dialog(self) -> None:
        path = filedialog.asksaveasfilename(parent=self.root, title="Save the drawing", initialdir=self._last_dir,
                                            defaultextension=".json", filetypes=SAVE_TYPES)
        if path:
            self._last_dir = Path(path).parent
            self.save_to(path)

    def open_dialog(self) -> None:
        path = filedialog.askopenfilename(parent=self.root, title="Open a drawing or a picture",
                                          initialdir=self._last_dir, filetypes=OPEN_TYPES)
        if path:
            self._last_dir = Path(path).parent
            self.open_from(path)

    # --- the worker's news ----------------------------------------------------------------------

    def _poll(self) -> None:
        handlers = {Predicted: self._on_predicted, NumberRead: self._on_number_read, Listed: self._on_listed,
                    Failed: self._on_failed, Readiness: self._on_readiness}
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            handlers[type(event)](event)
            self.view.show(self.state)
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def _on_predicted(self, event: Predicted) -> None:
        self.state.round_trip_ms = event.seconds * 1000
        if event.request is self._awaiting:
            self._awaiting = None
        if event.request.epoch != self.state.epoch:
            return  # about content that is no longer shown
        answer = replace(event.answer.predictions()[0], pixels=event.request.vector)
        self.state.result = answer
        if answer.doubt:
            self._say(f"{not_sure(answer.probabilities, answer.doubt)} · {answer.model}", Level.WARN)
        else:
            self._say(f"{answer.confidence:.0%} sure · {answer.model}")

    def _on_number_read(self, event: NumberRead) -> None:
        self.state.round_trip_ms = event.seconds * 1000
        if event.request is self._awaiting:
            self._awaiting = None
        if event.request.epoch != self.state.epoch or not self.state.number_mode:
            return
        reading = self.state.reading = event.reading
        unread = [(k, line) for k, line in enumerate(reading.lines, 1) if not isinstance(line, Number)]
        if unread:  # the other lines are shown; this one has a "?" on the answer line
            k, error = unread[0]
            self._say(_shorten(f"line {k} of {len(reading.lines)}: {error}"), Level.WARN)
            return
        doubtful = sum(d.uncertain for number in reading.numbers for d in number.digits)
        self._say((f"{len(reading.lines)} lines · " if len(reading.lines) > 1 else "") + f"{reading.confidence:.0%} sure"
                  + (f" · {doubtful} unsure (?)" if doubtful else ""))

    def _on_listed(self, event: Listed) -> None:
        self.state.round_trip_ms = event.seconds * 1000
        reply = event.models
        usable = [m for m in reply.models if m.state != pb.FAILED]
        self.state.models = [ModelChoice(m.name, m.test_accuracy) for m in usable]
        self.state.default_model = reply.default_model
        wanted = self.state.model
        if wanted and wanted not in {m.name for m in usable}:
            self.state.model = ""
            self._say(f"The server has no model “{wanted}”; using {reply.default_model or 'its default'}.",
                      Level.WARN)

    def _on_failed(self, event: Failed) -> None:
        if event.request is not None and event.request is self._awaiting:
            self._awaiting = None
        exc = event.error
        if isinstance(exc, ServerUnavailable):
            headline = f"Server unreachable at {self.state.address}; reconnecting."
        elif isinstance(exc, ServerError):
            headline = _shorten(f"Server refused: {exc.code.name}: {exc.details}")
        elif isinstance(exc, ValueError):  # a number that cannot be read (too many digits)
            headline = _shorten(str(exc))
        else:
            headline = _shorten(f"Cannot connect: {exc}")
        if event.request is None:  # a model listing: an answer on display stays
            if self.state.result is None:
                self._say(headline, Level.ERROR)
        elif event.request.epoch == self.state.epoch:
            self.state.result, self.state.reading = None, None
            self._say(headline, Level.ERROR)

    def _on_readiness(self, event: Readiness) -> None:
        self.state.status = Status.CONNECTED if event.ready else Status.DISCONNECTED
        if not event.ready:
            return
        if self.state.message.level is Level.ERROR:
            self._say("Connected.")
        if not self.state.is_empty:  # the answer on display may be stale or missing: ask again
            self.predict_now()

    # --- small helpers ---------------------------------------------------------------------------

    def _say(self, text: str, level: Level = Level.INFO) -> None:
        self.state.message = Message(text, level)
        self.view.show(self.state)

    def _notice(self, text: str, level: Level = Level.INFO) -> bool:
        """Show the outcome of a save or open; False, for the callers that report a failure."""
        self.state.notice = Message(text, level)
        self.view.show(self.state)
        return level is not Level.ERROR

    # --- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker and the timers; the caller destroys the root."""
        self._cancel_live()
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
            self._poll_id = None
        self._worker.stop()

    def quit(self) -> None:
        self.close()
        self.root.destroy()
        # The view and the app refer to each other; left to the cycle collector, the view's
        # Tk images and variables could be freed on another thread, which Tk refuses.
        del self.view


def _shorten(text: str, limit: int = 90) -> str:
    """At most ``limit`` characters: the message area has room for three lines."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run(options: ConnectionOptions, model: str) -> int:
    """Open the window and run it until it is closed; 2 when there is no display to open it on."""
    try:
        root = tk.Tk(className="digits")
    except tk.TclError as exc:
        print(f"digits draw: no display (set DISPLAY to a running X server): {exc}", file=sys.stderr)
        return 2
    DrawApp(root, options, model)
    root.mainloop()
    return 0
