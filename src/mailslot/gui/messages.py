"""Messages in a read-only text: sender or recipients, local time, text, Reply links.

One ``MessageText`` renders the inbox, the Sent view and search results alike.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mailslot.gui import theme
from mailslot.gui.archive import ArchivedMessage, MessageLike
from mailslot.gui.widgets import ReadOnlyText

ReplyFn = Callable[[ArchivedMessage, bool], None]
"""``reply(message, to_all)``."""


def local_time(at: datetime, now: datetime | None = None) -> str:
    """Server reception time in local time: "today 14:03:12" or "Mon 24 Nov 2026, 09:15:02"."""
    local = at.astimezone()
    now = (now or datetime.now()).astimezone()
    if local.date() == now.date():
        return local.strftime("today %H:%M:%S")
    return local.strftime("%a %d %b %Y, %H:%M:%S")


def as_archived(message: MessageLike) -> ArchivedMessage:
    if isinstance(message, ArchivedMessage):
        return message
    return ArchivedMessage(message.id, message.sender, message.received_at, message.text)


def recipients_line(message: ArchivedMessage) -> str:
    return "to everyone" if message.everyone else "to " + ", ".join(message.to)


class MessageText(ReadOnlyText):
    """A read-only text of messages. A received message carries a Reply link (and Reply all
    where its other recipients are known); a sent one a Follow up link to the same people.
    Both call ``reply``."""

    def __init__(self, master: tk.Misc, reply: ReplyFn) -> None:
        super().__init__(master)
        self._reply = reply
        self._by_tag: dict[str, ArchivedMessage] = {}
        t = self.text
        t.configure(font=theme.font(self), spacing1=0, spacing3=0)
        t.tag_configure(
            "section",
            font=theme.font(self, 1, "bold"),
            foreground=theme.TEXT,
            spacing1=6,
            spacing3=8,
        )
        t.tag_configure("empty", foreground=theme.MUTED, spacing3=10, lmargin1=4)
        t.tag_configure("sender", font=theme.font(self, 0, "bold"), spacing1=8, lmargin1=4)
        t.tag_configure("time", foreground=theme.MUTED)
        t.tag_configure(
            "body",
            lmargin1=4,
            lmargin2=4,
            rmargin=8,
            spacing1=3,
            spacing2=2,
            spacing3=10,
            font=theme.font(self, 1),
        )
        t.tag_configure("new", background=theme.NEW_BG, lmargin1=4, lmargin2=4)
        t.tag_configure("newmark", foreground=theme.ACCENT, font=theme.font(self, -1, "bold"))
        t.tag_configure("link", foreground=theme.ACCENT, underline=True)
        t.tag_bind("link", "<Enter>", lambda _e: t.configure(cursor="hand2"))
        t.tag_bind("link", "<Leave>", lambda _e: t.configure(cursor="arrow"))
        t.tag_bind("link", "<Button-1>", self._clicked)

    def insert_message(self, index: str, message: MessageLike, *, new: bool = False) -> None:
        """Insert one message at ``index`` (a left-gravity mark stays above it, "end" below)."""
        m = as_archived(message)
        extra = ("new",) if new else ()
        head = recipients_line(m) if m.sent else m.sender
        pieces: list[tuple[str, tuple[str, ...]]] = [
            (head, ("sender", *extra)),
            ("   " + local_time(m.received_at), ("time", *extra)),
        ]
        if new:
            pieces.append(("   NEW", ("newmark", *extra)))
        if not m.sent:
            pieces += [("   ", extra), ("Reply", ("link", f"r{m.id}", *extra))]
            self._by_tag[f"r{m.id}"] = m
        if m.to or m.everyone:
            # on a sent message: write again to the same people
            label = "Follow up" if m.sent else "Reply all"
            pieces += [("   ", extra), (label, ("link", f"a{m.id}", *extra))]
            self._by_tag[f"a{m.id}"] = m
        pieces += [("\n", ("sender", *extra)), (m.text + "\n", ("body", *extra))]
        if index == "end":
            args: list[Any] = []
            for piece, tags in pieces:
                args += [piece, tags]
            self.text.insert("end", *args)
        else:
            # In reverse at a left-gravity mark, so the pieces read in order.
            for piece, tags in reversed(pieces):
                self.text.insert(index, piece, tags)

    def show(self, heading: str, messages: Sequence[MessageLike], empty: str) -> None:
        """Replace everything with ``heading`` and ``messages`` (or the ``empty`` sentence)."""
        self.text.delete("1.0", "end")
        self._by_tag.clear()
        self.text.insert("end", heading + "\n", ("section",))
        if not messages:
            self.text.insert("end", empty + "\n", ("empty", "emptynote"))
        for m in messages:
            self.insert_message("end", m)
        # Set once something follows the heading: line 2 exists only then.
        self.text.mark_set("list_top", "2.0")
        self.text.mark_gravity("list_top", "left")

    def prepend(self, message: MessageLike) -> None:
        """Put ``message`` first in a list made by ``show``."""
        ranges = self.text.tag_ranges("emptynote")
        if ranges:
            self.text.delete(ranges[0], ranges[1])
        self.insert_message("list_top", message)
        self.text.see("1.0")

    def _clicked(self, event: tk.Event[tk.Text]) -> None:
        index = self.text.index(f"@{event.x},{event.y}")
        for tag in self.text.tag_names(index):
            message = self._by_tag.get(tag)
            if message is not None:
                self._reply(message, tag.startswith("a"))
                return

    def content(self) -> str:
        """The visible text (for tests and copy)."""
        return self.text.get("1.0", "end-1c")

    def messages(self) -> list[ArchivedMessage]:
        """The messages shown, each once (for tests)."""
        return list({m.id: m for m in self._by_tag.values()}.values())

    def link_index(self, message_id: int, to_all: bool = False) -> str | None:
        """Where the Reply (or Reply all) link of a message is, or None (for tests)."""
        ranges = self.text.tag_ranges(f"{'a' if to_all else 'r'}{message_id}")
        return str(ranges[0]) if ranges else None
