"""The Sent view and the search over everything kept on this computer (B5)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from tkinter import ttk

from mailslot.gui import theme
from mailslot.gui.archive import ArchivedMessage
from mailslot.gui.messages import MessageText, ReplyFn

SENT_HEADING = "Sent from this computer"
NOTHING_SENT = "Nothing sent yet. Messages you send from this computer are kept here."


class SentView(ttk.Frame):
    def __init__(self, master: tk.Misc, reply: ReplyFn) -> None:
        super().__init__(master, padding=theme.PAD + 2)
        self.view = MessageText(self, reply)
        self.view.pack(fill="both", expand=True)
        self.view.show(SENT_HEADING, [], NOTHING_SENT)

    def load(self, messages: Sequence[ArchivedMessage]) -> None:
        self.view.show(SENT_HEADING, messages, NOTHING_SENT)

    def add(self, message: ArchivedMessage) -> None:
        self.view.prepend(message)

    def content(self) -> str:
        return self.view.content()


class SearchView(ttk.Frame):
    """A search box over received and sent messages; ``search(words)`` starts a search and
    ``show_results`` shows what it found."""

    def __init__(self, master: tk.Misc, search: Callable[[str], None], reply: ReplyFn) -> None:
        super().__init__(master, padding=theme.PAD + 2)
        self._search = search
        bar = ttk.Frame(self)
        bar.pack(fill="x")
        ttk.Label(bar, text="Find", style="Section.TLabel").pack(side="left", padx=(0, 10))
        self.query_var = tk.StringVar(self)
        self.entry = ttk.Entry(bar, textvariable=self.query_var)
        self.entry.pack(side="left", fill="x", expand=True)
        self.button = ttk.Button(bar, text="Search", command=self.submit, width=10)
        self.button.pack(side="left", padx=(8, 0))
        self.entry.bind("<Return>", lambda _e: self.submit())
        self.entry.bind("<KP_Enter>", lambda _e: self.submit())
        explained = ttk.Label(
            self,
            text="Searches the text, senders and recipients of every message kept on this "
            "computer. All words must match.",
            style="Muted.TLabel",
            justify="left",
        )
        explained.pack(fill="x", pady=(6, 8))
        self.bind(
            "<Configure>",
            lambda e: explained.configure(wraplength=max(200, e.width - 2 * theme.PAD - 8)),
            add="+",
        )
        self.view = MessageText(self, reply)
        self.view.pack(fill="both", expand=True)
        self.view.show("Search", [], "Type a few words and press Enter.")

    def submit(self) -> None:
        words = self.query_var.get().strip()
        if words:
            self._search(words)

    def show_results(self, words: str, messages: Sequence[ArchivedMessage]) -> None:
        n = len(messages)
        count = f"{n:,}" if n else "No"
        heading = f"{count} {'message' if n == 1 else 'messages'} with “{words}”"
        self.view.show(heading, messages, "Nothing kept on this computer matches.")

    def content(self) -> str:
        return self.view.content()
