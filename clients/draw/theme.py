"""The drawing window's look: a light card layout with one blue accent for the answer."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from tkinter import ttk

BG = "#eef1f5"
CARD = "#ffffff"
BORDER = "#d5dbe3"
TEXT = "#1f2937"
MUTED = "#6b7280"
SUBTLE = "#9ca3af"
FAINT = "#cbd5e1"
INK = "#111111"
PAPER = "#ffffff"  # the canvas, and what the eraser paints
ACCENT = "#2563eb"
ACCENT_ACTIVE = "#1d4ed8"
BAR = "#cbd5e1"
TRACK = "#f1f5f9"
OK = "#16a34a"
WARN = "#d97706"
ERROR = "#dc2626"


def fonts(root: tk.Misc) -> dict[str, tkfont.Font]:
    family = tkfont.nametofont("TkDefaultFont").actual("family")
    return {
        "base": tkfont.Font(root, family=family, size=10),
        "small": tkfont.Font(root, family=family, size=9),
        "title": tkfont.Font(root, family=family, size=11, weight="bold"),
        "digit": tkfont.Font(root, family=family, size=72, weight="bold"),
        "bold": tkfont.Font(root, family=family, size=10, weight="bold"),
    }


def apply_style(root: tk.Misc, base: tkfont.Font, bold: tkfont.Font) -> None:
    """ttk styles on the clam theme, which honours colours everywhere."""
    style = ttk.Style(root)
    style.theme_use("clam")
    style.configure("App.TFrame", background=BG)
    style.configure("TButton", font=base, padding=(0, 5), background="#f8fafc", foreground=TEXT,
                    bordercolor=BORDER, lightcolor="#f8fafc", darkcolor="#f8fafc", focuscolor=CARD)
    style.map("TButton", background=[("pressed", "#e2e8f0"), ("active", "#f1f5f9")],
              lightcolor=[("active", "#f1f5f9")], darkcolor=[("active", "#f1f5f9")],
              foreground=[("disabled", SUBTLE)])
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
    style.configure("Horizontal.TScale", background=CARD, troughcolor=TRACK, bordercolor=BORDER,
                    lightcolor=CARD, darkcolor=CARD, sliderthickness=14)
    root.option_add("*TCombobox*Listbox.font", base)
    root.option_add("*TCombobox*Listbox.selectBackground", ACCENT)
