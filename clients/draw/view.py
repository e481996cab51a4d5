"""The drawing window's Tk widgets: they show a DrawState and turn mouse and keys into actions.

Nothing here decides anything: every event calls a method of the
:class:`Actions` the view was given, and :meth:`DrawView.show` draws the
state as it is now.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Protocol

import numpy as np
from PIL import Image

from clients.draw.state import BRUSH_MAX, BRUSH_MIN, CANVAS, DrawState, Level, Status, fit
from clients.draw.theme import (ACCENT, BAR, BG, BORDER, CARD, ERROR, FAINT, INK, MUTED, OK, PAPER, SUBTLE, TEXT,
                                TRACK, WARN, apply_style, fonts)
from clients.drawing import Drawing, Stroke
from clients.numbers import Number
from clients.output import not_sure
from clients.prediction import Prediction
from digitserve.contract import CLASSES, IMAGE_SIDE, PIXELS

PREVIEW_ZOOM = 4
SENT = "sent to the model"  # the caption under the pixels sent
BAR_ROW = 21
BAR_LEFT, BAR_RIGHT, BAR_WIDTH = 24, 226, 272  # track from BAR_LEFT to BAR_RIGHT; percentages after it
WHEEL_STEP = 2.0  # brush pixels per wheel notch

LEVEL_COLOURS = {Level.INFO: MUTED, Level.WARN: WARN, Level.ERROR: ERROR}
STATUS_COLOURS = {Status.CONNECTING: WARN, Status.CONNECTED: OK, Status.DISCONNECTED: ERROR}


class Actions(Protocol):
    """What the window's controls do (implemented by the app)."""

    def predict_now(self) -> bool: ...
    def clear(self) -> None: ...
    def undo(self) -> bool: ...
    def redo(self) -> bool: ...
    def open_dialog(self) -> None: ...
    def save_dialog(self) -> None: ...
    def quit(self) -> None: ...
    def pen_down(self, x: float, y: float) -> None: ...
    def pen_move(self, x: float, y: float) -> None: ...
    def pen_up(self) -> None: ...
    def set_brush_width(self, width: float) -> None: ...
    def set_eraser(self, on: bool) -> None: ...
    def set_auto_predict(self, on: bool) -> None: ...
    def select_model(self, name: str) -> None: ...
    def set_number_mode(self, on: bool) -> None: ...
    def resize_canvas(self, width: int) -> None: ...
    def copy_number(self) -> bool: ...


class DrawView:
    """The widgets on a Tk root the caller owns."""

    def __init__(self, root: tk.Tk, actions: Actions, state: DrawState):
        self.root = root
        self._actions = actions
        self._fonts = fonts(root)
        self._stroke_item: int | None = None
        self._shown_result: object = ()  # what the bars and preview show now (() before the first show)
        self._shown_reading: object = ()  # the reading whose boxes the canvas shows now
        self._picker_values: list[str] = []
        self._picker_names: list[str] = []
        self._picture_image: tk.PhotoImage | None = None
        self._build(state)
        self.show(state)

    # --- showing the state ----------------------------------------------------------------------

    def show(self, state: DrawState) -> None:
        """Everything but the canvas's strokes, as the state says now."""
        self._show_status(state)
        if state.number_mode:
            if state.reading is not self._shown_reading:
                self._show_reading(state)
        elif state.result is not self._shown_result:
            self._show_result(state.result)
        self._message.configure(text=state.message.text, foreground=LEVEL_COLOURS[state.message.level])
        self._notice.configure(text=state.notice.text, foreground=LEVEL_COLOURS[state.notice.level])
        self._show_picker(state)
        self._undo_button.state(["!disabled" if state.can_undo else "disabled"])
        self._redo_button.state(["!disabled" if state.can_redo else "disabled"])
        if abs(self._brush.get() - state.brush.width) > 1e-6:
            self._brush.configure(command="")  # ttk.Scale calls its command on set() too
            self._brush.set(state.brush.width)
            self._brush.configure(command=self._on_brush_moved)
        self._brush_size.configure(text=f"{state.brush.width:.0f} px")
        self._eraser.set(state.brush.erase)
        self._auto.set(state.auto_predict)
        self._number_mode.set(state.number_mode)
        self._copy.state(["!disabled" if state.reading is not None and state.reading.numbers else "disabled"])
        self.canvas.configure(cursor="dotbox" if state.brush.erase else "pencil")
        self.canvas.itemconfigure(self._hint, state="normal" if state.is_empty else "hidden")

    def show_canvas(self, state: DrawState) -> None:
        """The canvas from scratch: the opened picture, or every stroke in order."""
        self.canvas.delete("ink", "picture", "boxes")
        self._shown_reading = ()
        self._stroke_item = None
        if state.picture is not None:
            if state.number_mode:  # fitted to the canvas when opened, where the digits' boxes are drawn
                self._picture_image = _photo(self.root, state.picture.image.convert("RGB"))
                self.canvas.create_image(0, 0, anchor="nw", image=self._picture_image, tags="picture")
            else:
                self._picture_image = _photo(self.root, fit(state.picture.image, CANVAS, CANVAS))
                self.canvas.create_image(CANVAS / 2, CANVAS / 2, image=self._picture_image, tags="picture")
        for stroke in state.drawing.strokes:
            self._create_stroke(state.drawing, stroke)
        self.canvas.tag_raise(self._hint)
        self.show(state)

    def set_number_mode(self, state: DrawState) -> None:
        """A wide canvas that follows the window's width, with the number on the answer line; or back."""
        on = state.number_mode
        self.root.title("digits — write a number" if on else "digits — draw a digit")
        self.root.resizable(on, False)
        self.canvas.configure(width=state.drawing.width, height=state.drawing.height)
        self._canvas_frame.pack_configure(fill="x" if on else "none", expand=on)
        self.canvas.pack_configure(fill="x" if on else "none", expand=on)
        self.canvas.itemconfigure(self._hint, text="write a number here" if on else "draw a digit here")
        self._drawing_heading.configure(text="Write a number" if on else "Draw a digit")
        self._digit_label.configure(font=self._fonts["title" if on else "digit"], width=14 if on else 2)
        if on:
            self._copy.pack(pady=(2, 0))
        else:
            self._copy.pack_forget()
            self.root.geometry("")  # back to the natural size
        self._shown_result, self._shown_reading = (), ()

    def _show_reading(self, state: DrawState) -> None:
        """Each digit's box with its answer above it (uncertain ones marked), each sign's, and the numbers, a line
        of the answer per line of writing ("?" for one that could not be read)."""
        reading = self._shown_reading = state.reading
        self.canvas.delete("boxes")
        lines = () if reading is None else reading.lines
        self._digit_label.configure(text="\n".join(line.marked if isinstance(line, Number) else "?" for line in lines)
                                    or "?", foreground=ACCENT if lines else FAINT)
        for number in [] if reading is None else reading.numbers:
            for digit in number.digits:
                colour = WARN if digit.uncertain else ACCENT
                self._box(digit.box, f"{digit.digit}?" if digit.uncertain else str(digit.digit), colour, (4, 3))
            for sign in number.signs:  # a point, a comma, a colon, a hyphen, a slash or a minus, seen as one
                self._box(sign.box, sign.char, ACCENT, (2, 2))
        # The panel beside shows the digit most worth a look: one the model doubts, else the least sure.
        at = None if reading is None else reading.most_doubtful()
        if at is None:
            self._show_detail(None, SENT)
            return
        number = reading.lines[at[0]]
        digit = number.digits[at[1]]
        why = not_sure(digit.probabilities, digit.doubt) if digit.doubt else "least sure"
        where = f" in line {at[0] + 1}" if len(lines) > 1 else ""
        self._show_detail(digit, f"digit {at[1] + 1} of {len(number.digits)}{where}, {why}")

    def _box(self, box: tuple[float, float, float, float], text: str, colour: str, dash: tuple[int, int]) -> None:
        """A dashed box on the canvas with its answer above it."""
        left, top, right, bottom = box
        self.canvas.create_rectangle(left, top, right, bottom, outline=colour, dash=dash, tags="boxes")
        self.canvas.create_text((left + right) / 2, max(top - 4, 10), anchor="s", fill=colour, text=text,
                                font=self._fonts["bold"], tags="boxes")

    def remove_picture(self) -> None:
        self.canvas.delete("picture")

    def show_stroke(self, drawing: Drawing) -> None:
        """The stroke being drawn (the last one) as it grows, without redrawing the others."""
        stroke = drawing.strokes[-1]
        if self._stroke_item is None:
            self._stroke_item = self._create_stroke(drawing, stroke)
        elif self.canvas.type(self._stroke_item) == "oval" and len(stroke.points) > 1:
            self.canvas.delete(self._stroke_item)
            self._stroke_item = self._create_stroke(drawing, stroke)
        elif len(stroke.points) > 1:
            self.canvas.coords(self._stroke_item, *[c for p in stroke.points for c in p])

    def end_stroke(self) -> None:
        self._stroke_item = None

    def _create_stroke(self, drawing: Drawing, stroke: Stroke) -> int:
        """A canvas item for one stroke: a round dot for a click, a smooth round-capped line for a drag."""
        pen, colour = drawing.pen_of(stroke), PAPER if stroke.erase else INK
        if len(stroke.points) == 1:
            (x, y), r = stroke.points[0], pen / 2
            return self.canvas.create_oval(x - r, y - r, x + r, y + r, fill=colour, outline="", tags="ink")
        return self.canvas.create_line(*[c for p in stroke.points for c in p], fill=colour, width=pen,
                                       capstyle=tk.ROUND, joinstyle=tk.ROUND, smooth=True, splinesteps=16,
                                       tags="ink")

    def _show_status(self, state: DrawState) -> None:
        parts = [state.status.value, state.address]
        if state.round_trip_ms is not None and state.status is Status.CONNECTED:
            parts.append(f"{state.round_trip_ms:.0f} ms")
        self._status.configure(text="  ·  ".join(parts))
        self._dot.itemconfigure(self._dot_item, fill=STATUS_COLOURS[state.status])

    def _show_result(self, result: Prediction | None) -> None:
        """The big digit, the ten bars and the pixels sent; None shows the empty state."""
        self._shown_result = result
        digit = None if result is None else result.digit
        doubted = result is not None and bool(result.doubt)
        self._digit_label.configure(text="?" if digit is None else f"{digit}?" if doubted else str(digit),
                                    foreground=FAINT if digit is None or doubted else ACCENT)
        self._show_detail(result, SENT)

    def _show_detail(self, result: Prediction | None, caption: str) -> None:
        """One prediction's ten bars and the pixels sent for it; None shows them empty."""
        digit = None if result is None else result.digit
        probabilities = (0.0,) * len(CLASSES) if result is None else result.probabilities
        self._sent_caption.configure(text=caption)
        for d, (label, bar, value) in enumerate(self._bar_items):
            p = float(probabilities[d])
            top = d * BAR_ROW + 3
            self._bars.coords(bar, BAR_LEFT, top, BAR_LEFT + (BAR_RIGHT - BAR_LEFT) * p, top + 14)
            winner = d == digit
            self._bars.itemconfigure(bar, fill=ACCENT if winner else BAR)
            self._bars.itemconfigure(label, fill=ACCENT if winner else MUTED)
            self._bars.itemconfigure(value, text="" if result is None else f"{p:.0%}",
                                     fill=TEXT if winner else MUTED)
        # The 28x28 pixels sent, zoomed without smoothing so each model pixel is a visible square.
        pixels = (np.zeros(PIXELS, np.uint8) if result is None or result.pixels is None
                  else np.asarray(result.pixels, np.uint8))
        header = f"P5\n{IMAGE_SIDE} {IMAGE_SIDE}\n255\n".encode()
        image = tk.PhotoImage(master=self.root, data=header + pixels.tobytes(), format="PPM")
        self._preview_image = image.zoom(PREVIEW_ZOOM)  # Tk keeps no reference of its own
        self._preview.configure(image=self._preview_image)

    def _show_picker(self, state: DrawState) -> None:
        names = [m.name for m in state.models]
        values = [_model_label(m.name, m.accuracy, state.default_model) for m in state.models]
        if not names:  # before the first ListModels: the model asked for, or the server's
            values = [state.model or "server default"]
        if values != self._picker_values:  # reconfiguring would close the list a user has open
            self._picker_values, self._picker_names = values, names
            self._picker.configure(values=values)
        shown = state.model or state.default_model
        index = names.index(shown) if shown in names else (0 if not names else -1)
        if index >= 0 and self._picker.current() != index:
            self._picker.current(index)

    # --- layout ----------------------------------------------------------------------------------

    def _build(self, state: DrawState) -> None:
        root = self.root
        root.title("digits — draw a digit")
        root.configure(background=BG)
        root.resizable(False, False)
        root.protocol("WM_DELETE_WINDOW", self._actions.quit)
        apply_style(root, self._fonts["base"], self._fonts["bold"])

        outer = ttk.Frame(root, style="App.TFrame", padding=(16, 16, 16, 8))
        outer.grid(row=0, column=0, sticky="nsew")
        left = self._card(outer)
        left.grid(row=0, column=0, sticky="nsew")
        # In number mode the window may be widened: the drawing side, and its canvas, take the room.
        root.columnconfigure(0, weight=1)
        outer.columnconfigure(0, weight=1)
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
        tk.Label(bar, text="Enter predict · Esc clear · Ctrl+Z undo · Ctrl+Y redo",
                 background=BG, foreground=SUBTLE, font=self._fonts["small"]).pack(side="right")

        a = self._actions
        root.bind("<Return>", lambda _e: a.predict_now())
        root.bind("<KP_Enter>", lambda _e: a.predict_now())
        root.bind("<Escape>", lambda _e: a.clear())
        root.bind("<Control-z>", lambda _e: a.undo())
        root.bind("<Control-Z>", lambda _e: a.redo())  # Ctrl+Shift+Z
        root.bind("<Control-y>", lambda _e: a.redo())
        root.bind("<Control-s>", lambda _e: a.save_dialog())
        root.bind("<Control-o>", lambda _e: a.open_dialog())
        root.bind("<e>", lambda _e: a.set_eraser(not self._eraser.get()))

    def _card(self, parent: tk.Misc) -> tk.Frame:
        return tk.Frame(parent, background=CARD, highlightthickness=1, highlightbackground=BORDER,
                        padx=16, pady=14)

    def _heading(self, parent: tk.Misc, text: str) -> tk.Label:
        return tk.Label(parent, text=text, background=CARD, foreground=TEXT, font=self._fonts["title"], anchor="w")

    def _build_drawing_side(self, card: tk.Frame) -> None:
        a = self._actions
        self._drawing_heading = self._heading(card, "Draw a digit")
        self._drawing_heading.pack(fill="x", pady=(0, 8))

        # The border is a frame around the canvas, so that event and drawing coordinates coincide.
        frame = self._canvas_frame = tk.Frame(card, background=BORDER, padx=1, pady=1)
        frame.pack()
        self.canvas = tk.Canvas(frame, width=CANVAS, height=CANVAS, background=PAPER, highlightthickness=0,
                                borderwidth=0, cursor="pencil")
        self.canvas.pack()
        self.canvas.bind("<Configure>", lambda e: a.resize_canvas(e.width))
        self._hint = self.canvas.create_text(CANVAS / 2, CANVAS / 2, text="draw a digit here", fill=FAINT,
                                             font=self._fonts["title"])
        self.canvas.bind("<ButtonPress-1>", lambda e: a.pen_down(*_point(e, self.canvas)))
        self.canvas.bind("<B1-Motion>", lambda e: a.pen_move(*_point(e, self.canvas)))
        self.canvas.bind("<ButtonRelease-1>", lambda _e: a.pen_up())
        # The wheel changes the pen: X11 sends buttons 4 and 5, other systems MouseWheel with a delta.
        self.canvas.bind("<Button-4>", lambda _e: a.set_brush_width(self._brush.get() + WHEEL_STEP))
        self.canvas.bind("<Button-5>", lambda _e: a.set_brush_width(self._brush.get() - WHEEL_STEP))
        self.canvas.bind("<MouseWheel>", lambda e: a.set_brush_width(
            self._brush.get() + WHEEL_STEP * (1 if e.delta > 0 else -1)))

        pen = tk.Frame(card, background=CARD)
        pen.pack(fill="x", pady=(10, 0))
        tk.Label(pen, text="Pen", background=CARD, foreground=TEXT, font=self._fonts["base"]).pack(side="left")
        self._brush = ttk.Scale(pen, from_=BRUSH_MIN, to=BRUSH_MAX, orient="horizontal", length=120,
                                takefocus=False, command=self._on_brush_moved)
        self._brush.pack(side="left", padx=(8, 6))
        self._brush_size = tk.Label(pen, text="", width=5, anchor="w", background=CARD, foreground=MUTED,
                                    font=self._fonts["small"])
        self._brush_size.pack(side="left")
        self._eraser = tk.BooleanVar(self.root, value=False)
        tk.Checkbutton(pen, text="Eraser", variable=self._eraser, indicatoron=False, takefocus=False,
                       command=lambda: a.set_eraser(self._eraser.get()), font=self._fonts["base"],
                       background="#f8fafc", foreground=TEXT, activebackground="#f1f5f9", selectcolor="#dbeafe",
                       relief="flat", overrelief="flat", offrelief="flat", borderwidth=1, highlightthickness=1,
                       highlightbackground=BORDER, padx=10, pady=2).pack(side="right")

        ttk.Button(card, text="Predict", style="Accent.TButton", command=a.predict_now,
                   takefocus=False).pack(fill="x", pady=(12, 0))
        buttons = tk.Frame(card, background=CARD)
        buttons.pack(fill="x", pady=(8, 0))
        actions = [("Undo", a.undo), ("Redo", a.redo), ("Clear", a.clear), ("Open…", a.open_dialog),
                   ("Save…", a.save_dialog)]
        made = []
        for column, (text, command) in enumerate(actions):
            buttons.columnconfigure(column, weight=1, uniform="actions")
            button = ttk.Button(buttons, text=text, command=command, takefocus=False, width=0)
            button.grid(row=0, column=column, sticky="ew", padx=(0 if column == 0 else 5, 0))
            made.append(button)
        self._undo_button, self._redo_button = made[0], made[1]

        self._auto = tk.BooleanVar(self.root, value=True)
        # A classic checkbutton: it draws a check mark where the clam theme draws a cross.
        tk.Checkbutton(card, text="Predict as you draw", variable=self._auto, takefocus=False,
                       command=lambda: a.set_auto_predict(self._auto.get()),
                       font=self._fonts["base"], background=CARD, foreground=TEXT, activebackground=CARD,
                       activeforeground=TEXT, selectcolor=CARD, highlightthickness=0, borderwidth=0,
                       padx=0).pack(anchor="w", pady=(12, 0))
        self._number_mode = tk.BooleanVar(self.root, value=False)
        tk.Checkbutton(card, text="Read a whole number (wider canvas)", variable=self._number_mode,
                       takefocus=False, command=lambda: a.set_number_mode(self._number_mode.get()),
                       font=self._fonts["base"], background=CARD, foreground=TEXT, activebackground=CARD,
                       activeforeground=TEXT, selectcolor=CARD, highlightthickness=0, borderwidth=0,
                       padx=0).pack(anchor="w", pady=(4, 0))
        self._notice = tk.Label(card, text="", background=CARD, foreground=MUTED, font=self._fonts["small"],
                                anchor="w", justify="left", wraplength=CANVAS)
        self._notice.pack(fill="x", pady=(8, 0))

    def _build_answer_side(self, card: tk.Frame) -> None:
        picker = tk.Frame(card, background=CARD)
        picker.pack(fill="x")
        self._heading(picker, "Model").pack(side="left")
        self._picker = ttk.Combobox(picker, state="readonly", width=26, font=self._fonts["base"])
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
        self._copy = ttk.Button(answer, text="Copy number", command=self._actions.copy_number, takefocus=False)

        sent = tk.Frame(middle, background=CARD)
        sent.pack(side="right", anchor="n", pady=(8, 0))
        side = IMAGE_SIDE * PREVIEW_ZOOM
        self._preview = tk.Label(sent, background="#000000", borderwidth=0, highlightthickness=1,
                                 highlightbackground=BORDER, width=side, height=side)
        self._preview.pack()
        self._sent_caption = tk.Label(sent, text=SENT, background=CARD, foreground=MUTED, font=self._fonts["small"])
        self._sent_caption.pack(pady=(4, 0))

        self._heading(card, "Probabilities").pack(fill="x", pady=(8, 6))
        self._bars = tk.Canvas(card, width=BAR_WIDTH, height=len(CLASSES) * BAR_ROW, background=CARD, highlightthickness=0)
        self._bars.pack()
        self._bar_items = []
        for d in CLASSES:
            top = d * BAR_ROW + 3
            label = self._bars.create_text(8, top + 7, text=str(d), fill=MUTED, font=self._fonts["bold"])
            self._bars.create_rectangle(BAR_LEFT, top, BAR_RIGHT, top + 14, fill=TRACK, outline="")
            bar = self._bars.create_rectangle(BAR_LEFT, top, BAR_LEFT, top + 14, fill=BAR, outline="")
            value = self._bars.create_text(BAR_WIDTH, top + 7, text="", anchor="e", fill=MUTED,
                                           font=self._fonts["small"])
            self._bar_items.append((label, bar, value))

    def _on_brush_moved(self, value: str) -> None:
        self._actions.set_brush_width(float(value))

    def _on_model_selected(self) -> None:
        self._picker.selection_clear()
        index = self._picker.current()
        if 0 <= index < len(self._picker_names):
            self._actions.select_model(self._picker_names[index])


def _point(event: tk.Event, canvas: tk.Canvas) -> tuple[float, float]:
    """The event's position, kept on the canvas so that what is sent is what is seen."""
    mapped = canvas.winfo_ismapped()
    width = canvas.winfo_width() if mapped else int(canvas.cget("width"))
    height = canvas.winfo_height() if mapped else int(canvas.cget("height"))
    return min(max(event.x, 0), width), min(max(event.y, 0), height)


def _model_label(name: str, accuracy: float, default: str) -> str:
    label = f"{name}  ·  {accuracy:.1%}"
    return label + "  ·  default" if name == default else label


def _photo(root: tk.Misc, image: Image.Image) -> tk.PhotoImage:
    """A Tk image from an RGB picture, through PPM: no ImageTk needed."""
    header = f"P6\n{image.size[0]} {image.size[1]}\n255\n".encode()
    return tk.PhotoImage(master=root, data=header + image.tobytes(), format="PPM")
