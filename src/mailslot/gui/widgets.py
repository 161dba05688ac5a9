"""Small shared widgets: status dots, a scrolled tree, a read-only text, coalesced refreshes."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Mapping, Sequence
from tkinter import ttk
from typing import Any, Literal, TypeVar

from mailslot.gui import theme


def scroll_text(box: ttk.Frame, text: tk.Text) -> ttk.Scrollbar:
    """Grid ``text`` into ``box`` (a frame of its own) with a vertical scrollbar beside it;
    the text takes whatever room ``box`` gets. Returns the scrollbar."""
    bar = ttk.Scrollbar(box, orient="vertical", command=text.yview)
    text.configure(yscrollcommand=bar.set)
    text.grid(row=0, column=0, sticky="nsew")
    bar.grid(row=0, column=1, sticky="ns")
    box.columnconfigure(0, weight=1)
    box.rowconfigure(0, weight=1)
    return bar


def dot_image(master: tk.Misc, color: str, size: int = 12, hollow: bool = False) -> tk.PhotoImage:
    """A small anti-aliased-looking filled (or hollow) circle as a PhotoImage."""
    img = tk.PhotoImage(master=master, width=size, height=size)
    r = (size - 2) / 2
    c = (size - 1) / 2
    rows: list[str] = []
    for y in range(size):
        row: list[str] = []
        for x in range(size):
            d = ((x - c) ** 2 + (y - c) ** 2) ** 0.5
            inside = d <= r and (not hollow or d >= r - 1.6)
            row.append(color if inside else theme.SURFACE)
        rows.append("{" + " ".join(row) + "}")
    img.put(" ".join(rows))
    # Make the background transparent so the dot sits well on any row colour.
    for y in range(size):
        for x in range(size):
            d = ((x - c) ** 2 + (y - c) ** 2) ** 0.5
            if d > r or (hollow and d < r - 1.6):
                img.transparency_set(x, y, True)
    return img


class Debouncer:
    """Coalesce refresh requests for ``widget``: a burst of ``schedule()`` calls runs
    ``action`` once, ``delay_ms`` after the first. ``action`` calls ``cancel()`` first,
    so running it directly also drops a pending run. Nothing runs after ``widget`` is
    destroyed."""

    def __init__(self, widget: tk.Misc, action: Callable[[], None], delay_ms: int = 120) -> None:
        self._widget = widget
        self._action = action
        self._delay_ms = delay_ms
        self._pending: str | None = None
        widget.bind("<Destroy>", self._destroyed, add="+")

    def schedule(self) -> None:
        if self._pending is None:
            self._pending = self._widget.after(self._delay_ms, self._action)

    def cancel(self) -> None:
        if self._pending is not None:
            self._widget.after_cancel(self._pending)
            self._pending = None

    def _destroyed(self, event: tk.Event[tk.Misc]) -> None:
        if event.widget is self._widget:
            self.cancel()


V = TypeVar("V")


def refill_tree(
    tree: ttk.Treeview,
    wanted: list[str],
    values: Mapping[str, V],
    shown: list[str],
    shown_values: Mapping[str, V],
    options: Callable[[str, V], dict[str, Any]],
) -> None:
    """Make ``tree`` list the rows ``wanted`` (iids, in order), row ``iid`` configured with
    ``options(iid, values[iid])``; ``shown`` and ``shown_values`` are what it lists now.

    A changed list of rows is rebuilt, keeping the selected rows that remain; otherwise only
    the rows whose value changed are reconfigured, so a burst of updates costs little.
    """
    if wanted != shown:
        selected = tree.selection()
        tree.delete(*tree.get_children())
        for key in wanted:
            tree.insert("", "end", iid=key, **options(key, values[key]))
        keep = [iid for iid in selected if iid in values]
        if keep:
            tree.selection_set(keep)
    else:
        for key in wanted:
            if shown_values.get(key) != values[key]:
                tree.item(key, **options(key, values[key]))


class ScrolledTree(ttk.Frame):
    """A Treeview with a vertical scrollbar that appears only when needed."""

    def __init__(
        self,
        master: tk.Misc,
        columns: Sequence[str] = (),
        show: str = "headings",
        selectmode: Literal["extended", "browse", "none"] = "browse",
        style: str = "Treeview",
        height: int = 10,
    ) -> None:
        super().__init__(master)
        self.tree = ttk.Treeview(
            self,
            columns=tuple(columns),
            show=show,  # type: ignore[arg-type]
            selectmode=selectmode,
            style=style,
            height=height,
        )
        self.vbar = ttk.Scrollbar(self, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=self._on_scroll)
        self.tree.grid(row=0, column=0, sticky="nsew")
        self.vbar.grid(row=0, column=1, sticky="ns")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)

    def _on_scroll(self, first: float | str, last: float | str) -> None:
        if float(first) <= 0.0 and float(last) >= 1.0:
            self.vbar.grid_remove()
        else:
            self.vbar.grid()
        self.vbar.set(first, last)


class ReadOnlyText(ttk.Frame):
    """A word-wrapping Text with a scrollbar; the user can select and copy but not type."""

    def __init__(self, master: tk.Misc, **text_options: Any) -> None:
        super().__init__(master)
        self.text = tk.Text(
            self,
            wrap="word",
            relief="flat",
            borderwidth=0,
            background=theme.SURFACE,
            foreground=theme.TEXT,
            highlightthickness=1,
            highlightbackground=theme.BORDER,
            highlightcolor=theme.ACCENT,
            padx=12,
            pady=10,
            cursor="arrow",
            insertwidth=0,
            undo=False,
        )
        if text_options:
            self.text.configure(**text_options)
        self.vbar = scroll_text(self, self.text)
        self.text.bind("<Key>", self._on_key)

    def _on_key(self, event: tk.Event[tk.Text]) -> str | None:
        # Allow navigation and copy; swallow everything that would edit.
        ctrl = bool(int(event.state) & 0x4)
        if ctrl and event.keysym.lower() in {"c", "a"}:
            if event.keysym.lower() == "a":
                self.text.tag_add("sel", "1.0", "end")
                return "break"
            return None
        if event.keysym in {
            "Up",
            "Down",
            "Left",
            "Right",
            "Prior",
            "Next",
            "Home",
            "End",
            "Tab",
            "ISO_Left_Tab",
        }:
            return None
        return "break"
