"""digits draw: a Tk window to draw a digit with the mouse and see what the server makes of it.

The window only records mouse drags into a :class:`~clients.drawing.Drawing`
and shows it; the Drawing is the source of truth (undo, open and save work on
it and the canvas is redrawn from it) and ``Drawing.to_vector`` makes the 784
pixels sent, so the CLI predicts a saved stroke file exactly as the window did.

Server calls never run on the Tk thread: a worker thread makes them one at a
time and hands results back through a queue that the Tk loop polls, so the
window stays responsive when the server is slow or gone. While the server is
unreachable the worker retries ListModels every two seconds on a fresh
channel and the window reconnects by itself.
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
import time
import tkinter as tk
import tkinter.font as tkfont
from dataclasses import dataclass
from pathlib import Path
from tkinter import filedialog, ttk

import numpy as np

from clients.connection import Answer, Connection, ConnectionOptions, ServerError, ServerUnavailable
from clients.drawing import Drawing, DrawingError
from digitserve.v1 import digits_pb2 as pb

CANVAS = 280  # canvas side in pixels, the size Drawing's display pen is tuned for
# The window's own calls: a short deadline and no retries inside the call, so
# a dead server is reported within seconds; the worker does the retrying.
CALL_TIMEOUT = 3.0
RECONNECT_SECONDS = 2.0
AUTO_PREDICT_MS = 150  # after a mouse release: long enough to start the next stroke of a 4 or 7
POLL_MS = 30
PREVIEW_ZOOM = 4

# Colours: a light card layout with one blue accent for the answer.
BG = "#eef1f5"
CARD = "#ffffff"
BORDER = "#d5dbe3"
TEXT = "#1f2937"
MUTED = "#6b7280"
SUBTLE = "#9ca3af"
FAINT = "#cbd5e1"
INK = "#111111"
ACCENT = "#2563eb"
ACCENT_ACTIVE = "#1d4ed8"
BAR = "#cbd5e1"
TRACK = "#f1f5f9"
OK = "#16a34a"
WARN = "#d97706"
ERROR = "#dc2626"

BAR_ROW = 21
BAR_LEFT, BAR_RIGHT, BAR_WIDTH = 24, 226, 272  # track from BAR_LEFT to BAR_RIGHT; percentages after it


# --- worker thread ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Request:
    """One prediction: the pixels and model as they were when the user asked."""

    vector: np.ndarray
    model: str
    epoch: int  # the canvas's clear count then: answers for a cleared drawing are dropped


@dataclass(frozen=True)
class _Predicted:
    request: _Request
    answer: Answer
    seconds: float


@dataclass(frozen=True)
class _Listed:
    models: pb.ListModelsResponse
    seconds: float


@dataclass(frozen=True)
class _Failed:
    error: Exception
    request: _Request | None  # None: the call that failed was ListModels


_Result = _Predicted | _Listed | _Failed


class _Worker:
    """Makes the window's server calls, one at a time, on its own thread.

    Only the newest prediction waiting is kept: while one call runs, newer
    requests replace each other, so a fast drawer never builds a backlog.
    Until ListModels has succeeded (at start and after the server became
    unreachable) each attempt opens a fresh channel, because a gRPC channel
    that failed backs off for longer and longer before it tries again.
    """

    def __init__(self, options: ConnectionOptions, results: queue.Queue[_Result]):
        self._options = options
        self._results = results
        self._wake = threading.Condition()
        self._next: _Request | None = None
        self._stopped = False
        self._connected = False  # only the worker's thread reads and writes it
        self._thread = threading.Thread(target=self._loop, name="digits-draw-calls", daemon=True)
        self._thread.start()

    def predict(self, request: _Request) -> None:
        with self._wake:
            self._next = request
            self._wake.notify()

    def stop(self) -> None:
        """Let the thread end after the call it may be making (it is a daemon: exiting never waits)."""
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _loop(self) -> None:
        connection: Connection | None = None
        retry_at = 0.0  # while disconnected: when to try ListModels again
        try:
            while True:
                with self._wake:
                    while not self._stopped and self._next is None:
                        if self._connected:
                            self._wake.wait()
                        elif (wait := retry_at - time.monotonic()) > 0:
                            self._wake.wait(wait)
                        else:
                            break
                    if self._stopped:
                        return
                    request, self._next = self._next, None
                if not self._connected:  # (re)connect first; a prediction waiting goes right after
                    if connection is not None:
                        connection.close()
                    connection, error = self._list_models()
                    retry_at = time.monotonic() + RECONNECT_SECONDS
                    if error is not None:
                        # A prediction that could not be sent fails with the same error, reported once.
                        self._results.put(_Failed(error, None if self._connected else request))
                        if not self._connected:
                            continue
                if request is not None and connection is not None:
                    self._predict(connection, request)
        finally:
            if connection is not None:
                connection.close()

    def _list_models(self) -> tuple[Connection | None, Exception | None]:
        """ListModels on a new connection; sets the connected state."""
        connection = None
        start = time.perf_counter()
        try:
            connection = Connection(self._options)
            models = connection.list_models()
        except ServerError as exc:  # reachable, but refused (a token, say): retrying would not help
            self._connected = True
            return connection, exc
        except Exception as exc:  # unreachable, or certificates that cannot be read: retry later
            self._connected = False
            return connection, exc
        self._connected = True
        self._results.put(_Listed(models, time.perf_counter() - start))
        return connection, None

    def _predict(self, connection: Connection, request: _Request) -> None:
        start = time.perf_counter()
        try:
            answer = connection.predict(request.vector.reshape(1, -1), request.model)
        except Exception as exc:  # any failure is shown in the window; the thread must live on
            self._connected = not isinstance(exc, ServerUnavailable)
            self._results.put(_Failed(exc, request))
        else:
            self._results.put(_Predicted(request, answer, time.perf_counter() - start))


# --- the window ------------------------------------------------------------------------------

class DrawApp:
    """The drawing window's widgets and behaviour, on a Tk root the caller owns.

    The public methods are what the buttons and keys call, so tests can drive
    the window the way a user does and read back what the user would see.
    """

    def __init__(self, root: tk.Tk, options: ConnectionOptions, model: str = ""):
        self.root = root
        self.options = dataclasses.replace(options, timeout=min(options.timeout, CALL_TIMEOUT), retries=0)
        self.drawing = Drawing(CANVAS, CANVAS)
        self.last_sent: np.ndarray | None = None  # the 784 pixels behind the answer on display
        self._initial_model = model
        self._model_names: list[str] = []
        self._probabilities = [0.0] * 10
        self._digit: int | None = None
        self._epoch = 0
        self._awaiting: _Request | None = None
        self._stroke_item: int | None = None
        self._auto_id: str | None = None
        self._state, self._state_colour = "connecting…", WARN
        self._rtt_ms: float | None = None
        self._last_dir = Path.cwd()

        self._build()
        self._results: queue.Queue[_Result] = queue.Queue()
        self._worker = _Worker(self.options, self._results)
        self._poll_id: str | None = self.root.after(POLL_MS, self._poll)
        self._show_status()

    # --- actions (buttons, keys, tests) --------------------------------------------------------

    def predict_now(self) -> bool:
        """Send the drawing for prediction; False (and a hint) when there is nothing to send."""
        self._cancel_auto()
        if self.drawing.is_empty:
            self._set_message("Draw a digit first.", MUTED)
            return False
        request = _Request(self.drawing.to_vector(), self.selected_model(), self._epoch)
        self._awaiting = request
        self._worker.predict(request)
        return True

    def clear(self) -> None:
        """Empty the drawing and forget the answer, including one still on its way."""
        self._cancel_auto()
        self.drawing.clear()
        self._epoch += 1
        self._awaiting = None
        self._redraw()
        self._show_answer(None)
        self._set_message("", MUTED)

    def undo(self) -> bool:
        """Remove the last stroke; with predict-as-you-draw, ask again about what is left."""
        if not self.drawing.undo():
            return False
        self._redraw()
        if self.drawing.is_empty:
            self.clear()
        else:
            self._auto_predict()
        return True

    def save_to(self, path: str | Path) -> bool:
        """Write the strokes to ``path`` (a stroke .json file); problems are shown in the window."""
        if self.drawing.is_empty:
            self._set_notice("Nothing to save: the canvas is empty.", ERROR)
            return False
        try:
            self.drawing.save(path)
        except OSError as exc:
            self._set_notice(f"Cannot save {Path(path).name}: {exc.strerror or exc}", ERROR)
            return False
        self._set_notice(f"Saved {Path(path).name}", MUTED)
        return True

    def open_from(self, path: str | Path) -> bool:
        """Replace the drawing with a stroke file's, fitted to the canvas; problems are shown."""
        try:
            loaded = Drawing.load(path)
        except DrawingError as exc:
            self._set_notice(str(exc), ERROR)
            return False
        self.clear()
        self.drawing = _fitted(loaded, CANVAS, CANVAS)
        self._redraw()
        self._set_notice(f"Opened {Path(path).name}", MUTED)
        self._auto_predict()
        return True

    def save_dialog(self) -> None:
        path = filedialog.asksaveasfilename(parent=self.root, title="Save strokes", initialdir=self._last_dir,
                                            defaultextension=".json", filetypes=_FILE_TYPES)
        if path:
            self._last_dir = Path(path).parent
            self.save_to(path)

    def open_dialog(self) -> None:
        path = filedialog.askopenfilename(parent=self.root, title="Open strokes", initialdir=self._last_dir,
                                          filetypes=_FILE_TYPES)
        if path:
            self._last_dir = Path(path).parent
            self.open_from(path)

    def close(self) -> None:
        """Stop the worker and the timers; the caller destroys the root."""
        self._cancel_auto()
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)
            self._poll_id = None
        self._worker.stop()

    def quit(self) -> None:
        self.close()
        self.root.destroy()

    # --- what the user sees ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A prediction is scheduled or on its way."""
        return self._awaiting is not None or self._auto_id is not None

    def answer_text(self) -> str:
        """The digit on display, or "" when there is none."""
        return "" if self._digit is None else str(self._digit)

    def message_text(self) -> str:
        """The line under the answer: confidence, a hint, or why there is no answer."""
        return self._message.cget("text")

    def notice_text(self) -> str:
        """The line under the buttons: the outcome of the last save or open."""
        return self._notice.cget("text")

    def status_text(self) -> str:
        return self._status.cget("text")

    def probability_values(self) -> list[float]:
        """The ten bars' values, digit 0 first (all zero when there is no answer)."""
        return list(self._probabilities)

    def models(self) -> list[str]:
        """The model names in the picker, in its order."""
        return list(self._model_names)

    def selected_model(self) -> str:
        """The picker's model, or the one asked for at start ("" is the server's default) before ListModels."""
        index = self._picker.current()
        return self._model_names[index] if self._model_names and index >= 0 else self._initial_model

    def select_model(self, name: str) -> None:
        """Pick a model as the user would in the picker (it re-predicts what is drawn)."""
        self._picker.current(self._model_names.index(name))
        self._on_model_selected()

    @property
    def auto_predict(self) -> bool:
        return self._auto.get()

    @auto_predict.setter
    def auto_predict(self, on: bool) -> None:
        self._auto.set(on)

    # --- layout ----------------------------------------------------------------------------------

    def _build(self) -> None:
        root = self.root
        root.title("digits — draw a digit")
        root.configure(background=BG)
        root.resizable(False, False)
        root.protocol("WM_DELETE_WINDOW", self.quit)

        family = tkfont.nametofont("TkDefaultFont").actual("family")
        self._fonts = {
            "base": tkfont.Font(root, family=family, size=10),
            "small": tkfont.Font(root, family=family, size=9),
            "title": tkfont.Font(root, family=family, size=11, weight="bold"),
            "digit": tkfont.Font(root, family=family, size=72, weight="bold"),
            "bold": tkfont.Font(root, family=family, size=10, weight="bold"),
        }
        self._style()

        outer = ttk.Frame(root, style="App.TFrame", padding=(16, 16, 16, 8))
        outer.grid(row=0, column=0, sticky="nsew")
        left = self._card(outer)
        left.grid(row=0, column=0, sticky="ns")
        right = self._card(outer)
        right.grid(row=0, column=1, sticky="ns", padx=(14, 0))
        self._build_drawing_side(left)
        self._build_answer_side(right)

        bar = tk.Frame(root, background=BG)
        bar.grid(row=1, column=0, sticky="ew", padx=18, pady=(0, 10))
        self._dot = tk.Canvas(bar, width=10, height=10, background=BG, highlightthickness=0)
        self._dot_item = self._dot.create_oval(1, 1, 9, 9, outline="", fill=WARN)
        self._dot.pack(side="left", padx=(0, 7))
        self._status = tk.Label(bar, text="", background=BG, foreground=MUTED, font=self._fonts["small"],
                                anchor="w")
        self._status.pack(side="left", fill="x", expand=True)
        tk.Label(bar, text="Enter predict · Esc clear · Ctrl+Z undo", background=BG, foreground=SUBTLE,
                 font=self._fonts["small"]).pack(side="right")

        root.bind("<Return>", lambda _e: self.predict_now())
        root.bind("<KP_Enter>", lambda _e: self.predict_now())
        root.bind("<Escape>", lambda _e: self.clear())
        root.bind("<Control-z>", lambda _e: self.undo())
        root.bind("<Control-s>", lambda _e: self.save_dialog())
        root.bind("<Control-o>", lambda _e: self.open_dialog())

    def _style(self) -> None:
        style = ttk.Style(self.root)
        style.theme_use("clam")
        base, bold = self._fonts["base"], self._fonts["bold"]
        style.configure("App.TFrame", background=BG)
        style.configure("TButton", font=base, padding=(0, 5), background="#f8fafc", foreground=TEXT,
                        bordercolor=BORDER, lightcolor="#f8fafc", darkcolor="#f8fafc", focuscolor=CARD)
        style.map("TButton", background=[("pressed", "#e2e8f0"), ("active", "#f1f5f9")],
                  lightcolor=[("active", "#f1f5f9")], darkcolor=[("active", "#f1f5f9")])
        style.configure("Accent.TButton", font=bold, foreground="#ffffff", background=ACCENT, bordercolor=ACCENT,
                        lightcolor=ACCENT, darkcolor=ACCENT)
        style.map("Accent.TButton", background=[("pressed", ACCENT_ACTIVE), ("active", ACCENT_ACTIVE)],
                  lightcolor=[("active", ACCENT_ACTIVE)], darkcolor=[("active", ACCENT_ACTIVE)],
                  bordercolor=[("active", ACCENT_ACTIVE)])
        style.configure("TCombobox", padding=(6, 3), arrowsize=13, bordercolor=BORDER, lightcolor=CARD,
                        darkcolor=CARD, arrowcolor=MUTED)
        style.map("TCombobox", fieldbackground=[("readonly", CARD)], selectbackground=[("readonly", CARD)],
                  selectforeground=[("readonly", TEXT)], foreground=[("readonly", TEXT)],
                  background=[("readonly", CARD)])
        self.root.option_add("*TCombobox*Listbox.font", base)
        self.root.option_add("*TCombobox*Listbox.selectBackground", ACCENT)

    def _card(self, parent: tk.Misc) -> tk.Frame:
        return tk.Frame(parent, background=CARD, highlightthickness=1, highlightbackground=BORDER,
                        padx=16, pady=14)

    def _heading(self, parent: tk.Misc, text: str) -> tk.Label:
        return tk.Label(parent, text=text, background=CARD, foreground=TEXT, font=self._fonts["title"], anchor="w")

    def _build_drawing_side(self, card: tk.Frame) -> None:
        self._heading(card, "Draw a digit").pack(fill="x", pady=(0, 8))

        # The border is a frame around the canvas, so that event and drawing coordinates coincide.
        frame = tk.Frame(card, background=BORDER, padx=1, pady=1)
        frame.pack()
        self.canvas = tk.Canvas(frame, width=CANVAS, height=CANVAS, background="#ffffff", highlightthickness=0,
                                borderwidth=0, cursor="pencil")
        self.canvas.pack()
        self._hint = self.canvas.create_text(CANVAS / 2, CANVAS / 2, text="draw a digit here", fill=FAINT,
                                             font=self._fonts["title"])
        self.canvas.bind("<ButtonPress-1>", self._on_press)
        self.canvas.bind("<B1-Motion>", self._on_drag)
        self.canvas.bind("<ButtonRelease-1>", self._on_release)

        ttk.Button(card, text="Predict", style="Accent.TButton", command=self.predict_now,
                   takefocus=False).pack(fill="x", pady=(12, 0))
        buttons = tk.Frame(card, background=CARD)
        buttons.pack(fill="x", pady=(8, 0))
        actions = [("Undo", self.undo), ("Clear", self.clear), ("Open…", self.open_dialog),
                   ("Save…", self.save_dialog)]
        for column, (text, command) in enumerate(actions):
            buttons.columnconfigure(column, weight=1, uniform="actions")
            ttk.Button(buttons, text=text, command=command, takefocus=False, width=0).grid(
                row=0, column=column, sticky="ew", padx=(0 if column == 0 else 6, 0))

        self._auto = tk.BooleanVar(self.root, value=True)
        # A classic checkbutton: it draws a check mark where the clam theme draws a cross.
        tk.Checkbutton(card, text="Predict as you draw", variable=self._auto, takefocus=False,
                       font=self._fonts["base"], background=CARD, foreground=TEXT, activebackground=CARD,
                       activeforeground=TEXT, selectcolor=CARD, highlightthickness=0, borderwidth=0,
                       padx=0).pack(anchor="w", pady=(12, 0))
        self._notice = tk.Label(card, text="", background=CARD, foreground=MUTED, font=self._fonts["small"],
                                anchor="w", justify="left", wraplength=CANVAS)
        self._notice.pack(fill="x", pady=(8, 0))

    def _build_answer_side(self, card: tk.Frame) -> None:
        picker = tk.Frame(card, background=CARD)
        picker.pack(fill="x")
        self._heading(picker, "Model").pack(side="left")
        self._picker = ttk.Combobox(picker, state="readonly", width=26, font=self._fonts["base"],
                                    values=[self._initial_model or "server default"])
        self._picker.set(self._initial_model or "server default")
        self._picker.pack(side="right")
        self._picker.bind("<<ComboboxSelected>>", lambda _e: self._on_model_selected())

        middle = tk.Frame(card, background=CARD)
        middle.pack(fill="x", pady=(10, 4))
        answer = tk.Frame(middle, background=CARD)
        answer.pack(side="left", fill="both", expand=True)
        self._digit_label = tk.Label(answer, text="?", background=CARD, foreground=FAINT, font=self._fonts["digit"],
                                     width=2, pady=0)
        self._digit_label.pack()
        # Three lines, always: an error message must not make the window jump.
        self._message = tk.Label(answer, text="", background=CARD, foreground=MUTED, font=self._fonts["base"],
                                 justify="center", anchor="n", wraplength=170, height=3)
        self._message.pack(fill="x")

        sent = tk.Frame(middle, background=CARD)
        sent.pack(side="right", anchor="n", pady=(8, 0))
        side = 28 * PREVIEW_ZOOM
        self._preview = tk.Label(sent, background="#000000", borderwidth=0, highlightthickness=1,
                                 highlightbackground=BORDER, width=side, height=side)
        self._preview.pack()
        tk.Label(sent, text="sent to the model", background=CARD, foreground=MUTED,
                 font=self._fonts["small"]).pack(pady=(4, 0))
        self._show_preview(None)

        self._heading(card, "Probabilities").pack(fill="x", pady=(8, 6))
        self._bars = tk.Canvas(card, width=BAR_WIDTH, height=10 * BAR_ROW, background=CARD, highlightthickness=0)
        self._bars.pack()
        self._bar_items = []
        for d in range(10):
            top = d * BAR_ROW + 3
            label = self._bars.create_text(8, top + 7, text=str(d), fill=MUTED, font=self._fonts["bold"])
            self._bars.create_rectangle(BAR_LEFT, top, BAR_RIGHT, top + 14, fill=TRACK, outline="")
            bar = self._bars.create_rectangle(BAR_LEFT, top, BAR_LEFT, top + 14, fill=BAR, outline="")
            value = self._bars.create_text(BAR_WIDTH, top + 7, text="", anchor="e", fill=MUTED,
                                           font=self._fonts["small"])
            self._bar_items.append((label, bar, value))

    # --- drawing -----------------------------------------------------------------------------------

    def _point(self, event: tk.Event) -> tuple[float, float]:
        """The event's position in drawing coordinates, kept on the canvas so what is sent is what is seen."""
        return min(max(event.x, 0), CANVAS), min(max(event.y, 0), CANVAS)

    def _on_press(self, event: tk.Event) -> None:
        self._cancel_auto()  # the next stroke of the same digit has begun
        x, y = self._point(event)
        self.drawing.begin_stroke(x, y)
        self._stroke_item = self._draw_stroke(self.drawing.strokes[-1])
        self.canvas.itemconfigure(self._hint, state="hidden")
        self._set_notice("", MUTED)  # "Saved …" is about a drawing that is changing now

    def _on_drag(self, event: tk.Event) -> None:
        if self._stroke_item is None:
            return
        self.drawing.extend_stroke(*self._point(event))
        points = self.drawing.strokes[-1]
        if self.canvas.type(self._stroke_item) == "oval" and len(points) > 1:
            self.canvas.delete(self._stroke_item)
            self._stroke_item = self._draw_stroke(points)
        elif len(points) > 1:
            self.canvas.coords(self._stroke_item, *[c for p in points for c in p])

    def _on_release(self, _event: tk.Event) -> None:
        if self._stroke_item is None:
            return
        self._stroke_item = None
        self._auto_predict()

    def _draw_stroke(self, points: list[tuple[float, float]]) -> int:
        """A canvas item for one stroke: a round dot for a click, a smooth round-capped line for a drag."""
        pen = self.drawing.display_pen_width()
        if len(points) == 1:
            (x, y), r = points[0], pen / 2
            return self.canvas.create_oval(x - r, y - r, x + r, y + r, fill=INK, outline="", tags="ink")
        return self.canvas.create_line(*[c for p in points for c in p], fill=INK, width=pen, capstyle=tk.ROUND,
                                       joinstyle=tk.ROUND, smooth=True, splinesteps=16, tags="ink")

    def _redraw(self) -> None:
        """Show the Drawing again from scratch (after undo, clear or open)."""
        self.canvas.delete("ink")
        self._stroke_item = None
        for stroke in self.drawing.strokes:
            self._draw_stroke(stroke)
        self.canvas.itemconfigure(self._hint, state="normal" if self.drawing.is_empty else "hidden")

    def _auto_predict(self) -> None:
        """With predict-as-you-draw on, predict once the mouse has rested briefly."""
        self._cancel_auto()
        if self._auto.get() and not self.drawing.is_empty:
            self._auto_id = self.root.after(AUTO_PREDICT_MS, self._auto_fire)

    def _auto_fire(self) -> None:
        self._auto_id = None
        self.predict_now()

    def _cancel_auto(self) -> None:
        if self._auto_id is not None:
            self.root.after_cancel(self._auto_id)
            self._auto_id = None

    def _on_model_selected(self) -> None:
        self._picker.selection_clear()
        if not self.drawing.is_empty:
            self.predict_now()

    # --- results from the worker ---------------------------------------------------------------------

    def _poll(self) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                break
            if isinstance(result, _Predicted):
                self._on_predicted(result)
            elif isinstance(result, _Listed):
                self._on_listed(result)
            else:
                self._on_failed(result)
        self._poll_id = self.root.after(POLL_MS, self._poll)

    def _on_predicted(self, result: _Predicted) -> None:
        self._rtt_ms = result.seconds * 1000
        self._set_state("connected", OK)
        if result.request is self._awaiting:
            self._awaiting = None
        if result.request.epoch != self._epoch:
            return
        probabilities = result.answer.probabilities[0]
        self.last_sent = result.request.vector
        self._show_answer([float(p) for p in probabilities])
        self._show_preview(result.request.vector)
        best = int(np.argmax(probabilities))
        self._set_message(f"{probabilities[best]:.0%} sure · {result.answer.model}", MUTED)

    def _on_listed(self, result: _Listed) -> None:
        self._rtt_ms = result.seconds * 1000
        self._set_state("connected", OK)
        reply = result.models
        usable = [m for m in reply.models if m.state != pb.FAILED]
        current = self.selected_model() or self._initial_model
        self._model_names = [m.name for m in usable]
        self._picker.configure(values=[_model_label(m, reply.default_model) for m in usable])
        wanted = current if current in self._model_names else reply.default_model
        if wanted in self._model_names:
            self._picker.current(self._model_names.index(wanted))
        if current and current not in self._model_names:
            self._set_message(f"The server has no model “{current}”; using {wanted or 'its default'}.", WARN)
        elif self._digit is None and self._message.cget("foreground") == ERROR:
            self._set_message("Connected again.", MUTED)

    def _on_failed(self, result: _Failed) -> None:
        if result.request is not None and result.request is self._awaiting:
            self._awaiting = None
        exc = result.error
        if isinstance(exc, ServerUnavailable):
            self._set_state("server unreachable — retrying", ERROR)
            headline, colour = f"Server unreachable at {self.options.address}; retrying every " \
                               f"{RECONNECT_SECONDS:g} s.", ERROR
        elif isinstance(exc, ServerError):
            self._set_state(f"server error: {exc.code.name}", ERROR)
            headline, colour = _shorten(f"Server refused: {exc.code.name}: {exc.details}"), ERROR
        else:
            self._set_state(_shorten(f"error: {exc}"), ERROR)
            headline, colour = _shorten(f"Cannot connect: {exc}"), ERROR
        if result.request is None or result.request.epoch == self._epoch:
            self._show_answer(None)
            self._set_message(headline, colour)

    # --- small display helpers -------------------------------------------------------------------------

    def _show_answer(self, probabilities: list[float] | None) -> None:
        """The big digit and the ten bars; None shows the empty state."""
        self._probabilities = probabilities or [0.0] * 10
        self._digit = None if probabilities is None else int(np.argmax(probabilities))
        if self._digit is None:
            self.last_sent = None
            self._show_preview(None)
        self._digit_label.configure(text="?" if self._digit is None else str(self._digit),
                                    foreground=FAINT if self._digit is None else ACCENT)
        for d, (label, bar, value) in enumerate(self._bar_items):
            p = self._probabilities[d]
            top = d * BAR_ROW + 3
            self._bars.coords(bar, BAR_LEFT, top, BAR_LEFT + (BAR_RIGHT - BAR_LEFT) * p, top + 14)
            winner = d == self._digit
            self._bars.itemconfigure(bar, fill=ACCENT if winner else BAR)
            self._bars.itemconfigure(label, fill=ACCENT if winner else MUTED)
            self._bars.itemconfigure(value, text="" if probabilities is None else f"{p:.0%}",
                                     fill=TEXT if winner else MUTED)

    def _show_preview(self, vector: np.ndarray | None) -> None:
        """The 28x28 pixels sent, zoomed without smoothing so each model pixel is a visible square."""
        pixels = np.zeros(784, np.uint8) if vector is None else np.asarray(vector, np.uint8)
        image = tk.PhotoImage(master=self.root, data=b"P5\n28 28\n255\n" + pixels.tobytes(), format="PPM")
        self._preview_image = image.zoom(PREVIEW_ZOOM)  # Tk keeps no reference of its own
        self._preview.configure(image=self._preview_image)

    def _set_message(self, text: str, colour: str) -> None:
        self._message.configure(text=text, foreground=colour)

    def _set_notice(self, text: str, colour: str) -> None:
        self._notice.configure(text=text, foreground=colour)

    def _set_state(self, state: str, colour: str) -> None:
        self._state, self._state_colour = state, colour
        self._show_status()

    def _show_status(self) -> None:
        parts = [self._state, self.options.address]
        if self._rtt_ms is not None and self._state == "connected":
            parts.append(f"{self._rtt_ms:.0f} ms")
        self._status.configure(text="  ·  ".join(parts))
        self._dot.itemconfigure(self._dot_item, fill=self._state_colour)


_FILE_TYPES = [("Stroke files", "*.json"), ("All files", "*")]


def _shorten(text: str, limit: int = 90) -> str:
    """At most ``limit`` characters: the message area has room for three lines."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _model_label(model: pb.ModelInfo, default: str) -> str:
    label = f"{model.name}  ·  {model.test_accuracy:.1%}"
    return label + "  ·  default" if model.name == default else label


def _fitted(drawing: Drawing, width: int, height: int) -> Drawing:
    """The drawing scaled uniformly and centred onto a width x height canvas.

    A uniform scale keeps ``to_vector`` unchanged (it depends only on the
    strokes' shape), so a file drawn on another canvas predicts the same here.
    """
    if (drawing.width, drawing.height) == (width, height):
        return drawing
    factor = min(width / drawing.width, height / drawing.height)
    dx, dy = (width - drawing.width * factor) / 2, (height - drawing.height * factor) / 2
    strokes = [[(x * factor + dx, y * factor + dy) for x, y in s] for s in drawing.strokes]
    return Drawing(width, height, strokes)


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
