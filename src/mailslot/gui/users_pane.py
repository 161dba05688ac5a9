"""The users pane (S6, B4): the server's username log with who is online, live."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Any

from mailslot.gui import theme
from mailslot.gui.roster import Roster, filter_key
from mailslot.gui.widgets import Debouncer, ScrolledTree, dot_image, refill_tree
from mailslot.protocol.names import name_key


class UsersPane(ttk.Frame):
    """Lists every name the server knows; online names carry a green dot.

    Re-rendering is coalesced: a burst of presence events costs one refresh.
    Double-click or Enter on a name calls ``on_pick(name)``.
    """

    def __init__(self, master: tk.Misc, roster: Roster, on_pick: Callable[[str], None]) -> None:
        super().__init__(master, padding=(theme.PAD, theme.PAD, theme.PAD // 2, theme.PAD))
        self.roster = roster
        self.me = ""
        self._on_pick = on_pick
        self._refresh = Debouncer(self, self.render)
        self._rendered_version = -1
        self._rendered_filter: str | None = None
        self._rendered_width = -1
        self._shown: list[str] = []
        self._values: dict[str, tuple[str, bool]] = {}
        self._font = theme.font(self)
        self._bold = theme.font(self, weight="bold")
        self._label_width = 0
        self._img_on = dot_image(self, theme.ONLINE)
        self._img_off = dot_image(self, theme.OFFLINE, hollow=True)

        self.title = ttk.Label(self, text="People", style="Section.TLabel")
        self.title.grid(row=0, column=0, sticky="w")
        self.summary = ttk.Label(self, text="", style="Muted.TLabel")
        self.summary.grid(row=1, column=0, sticky="w", pady=(0, 6))
        self.filter_var = tk.StringVar(self)
        self.filter = ttk.Entry(self, textvariable=self.filter_var)
        self.filter.grid(row=2, column=0, sticky="ew", pady=(0, 6))
        self._placeholder(self.filter, "Filter names…")
        self.filter_var.trace_add("write", lambda *_: self.schedule())
        self.list = ScrolledTree(self, show="tree", selectmode="browse")
        tree = self.tree = self.list.tree
        tree.column("#0", width=180, minwidth=100, stretch=True)
        tree.tag_configure("offline", foreground=theme.MUTED)
        tree.tag_configure("me", font=theme.font(self, weight="bold"))
        self.list.grid(row=3, column=0, sticky="nsew")
        self.hint = ttk.Label(
            self, text="Double-click a name to write to them.", style="Muted.TLabel", wraplength=220
        )
        self.hint.grid(row=4, column=0, sticky="w", pady=(6, 0))
        self.columnconfigure(0, weight=1)
        self.rowconfigure(3, weight=1)
        tree.bind("<Configure>", self._tree_resized, add="+")
        tree.bind("<Double-1>", self._picked)
        tree.bind("<Return>", self._picked)
        roster.on_change(self.schedule)
        self.bind("<Configure>", lambda e: self.hint.configure(wraplength=max(120, e.width - 24)))

    def _placeholder(self, entry: ttk.Entry, text: str) -> None:
        def show(_e: object = None) -> None:
            if not self.filter_var.get() and self.focus_get() is not entry:
                entry.configure(foreground=theme.MUTED)
                entry.insert(0, text)
                self._placeholder_on = True

        def hide(_e: object = None) -> None:
            if getattr(self, "_placeholder_on", False):
                self._placeholder_on = False
                entry.delete(0, "end")
                entry.configure(foreground=theme.TEXT)

        self._placeholder_on = False
        entry.bind("<FocusIn>", hide, add="+")
        entry.bind("<FocusOut>", show, add="+")
        show()

    @property
    def filter_text(self) -> str:
        return "" if self._placeholder_on else self.filter_var.get()

    def set_filter(self, text: str) -> None:
        if self._placeholder_on:
            self._placeholder_on = False
            self.filter.configure(foreground=theme.TEXT)
        self.filter_var.set(text)
        self.render()

    def schedule(self) -> None:
        """Ask for a refresh soon; many calls in a burst give one refresh."""
        self._refresh.schedule()

    def render(self) -> None:
        self._refresh.cancel()
        flt = filter_key(self.filter_text)
        width = self._label_width
        if (self._rendered_version, self._rendered_filter, self._rendered_width) == (
            self.roster.version,
            flt,
            width,
        ):
            return
        people = self.roster.people()
        me_key = name_key(self.me) if self.me else None
        wanted: list[str] = []
        values: dict[str, tuple[str, bool]] = {}
        for p in people:
            key = name_key(p.name)
            if flt and flt not in key:
                continue
            label = self._fit(p.name, "  (you)" if key == me_key else "", width)
            wanted.append(key)
            values[key] = (label, p.online)

        def row(key: str, value: tuple[str, bool]) -> dict[str, Any]:
            label, online = value
            return {
                "text": " " + label,
                "image": self._img_on if online else self._img_off,
                "tags": self._tags(online, key == me_key),
            }

        refill_tree(self.tree, wanted, values, self._shown, self._values, row)
        self._shown = wanted
        self._values = values
        self._rendered_version = self.roster.version
        self._rendered_filter = flt
        self._rendered_width = width
        total, online_n = len(self.roster), self.roster.online_count
        self.summary.configure(
            text=f"{total:,} known · {online_n:,} online"
            + (f" · {len(wanted)} shown" if flt else "")
        )

    def _fit(self, name: str, suffix: str, width: int) -> str:
        """``name`` + ``suffix``, the name cut short with "…" so the whole fits ``width``
        pixels (0: unknown yet), so that "(you)" always shows."""
        font = self._bold if suffix else self._font
        if width <= 0 or font.measure(name + suffix) <= width:
            return name + suffix
        while len(name) > 1 and font.measure(name + "…" + suffix) > width:
            name = name[:-1]
        return name + "…" + suffix

    def _tree_resized(self, event: tk.Event[tk.Misc]) -> None:
        # the room for a label: the row less the dot and the padding around it
        width = max(40, event.width - 44)
        if width != self._label_width:
            self._label_width = width
            self.schedule()

    def _tags(self, online: bool, me: bool) -> tuple[str, ...]:
        return (("online" if online else "offline"),) + (("me",) if me else ())

    def _picked(self, _event: object) -> str:
        sel = self.tree.selection()
        if sel:
            person = self.roster.lookup(sel[0])
            if person is not None and name_key(person.name) != name_key(self.me):
                self._on_pick(person.name)
        return "break"

    def shown_names(self) -> list[str]:
        """Names currently listed (for tests and accessibility)."""
        people = (self.roster.lookup(k) for k in self._shown)
        return [p.name for p in people if p is not None]

    def is_marked_online(self, name: str) -> bool:
        return self._values.get(name_key(name), ("", False))[1]
