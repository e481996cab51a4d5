"""digits draw: a Tk window to draw a digit, or open a picture of one, and see what the server makes of it.

- ``state``  — what the window knows, as plain data (strokes and their history, pen, connection, answer);
- ``worker`` — the server calls, on their own thread, over one connection whose channel it watches;
- ``view``   — the Tk widgets, which show the state and turn mouse and keys into actions (``theme``: their look);
- ``app``    — the actions and the worker's answers applied to the state, and ``run``.
"""

from clients.draw.app import DrawApp, run

__all__ = ["DrawApp", "run"]
