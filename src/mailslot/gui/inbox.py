"""Inbox (S11–S13, B4, B5): the waiting-count badge, Check messages, new and archived messages."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from datetime import datetime
from tkinter import ttk

from mailslot.gui import theme
from mailslot.gui.archive import MessageLike
from mailslot.gui.widgets import ReadOnlyText

ARCHIVE_CHUNK = 400


def local_time(at: datetime, now: datetime | None = None) -> str:
    """Server reception time in local time: "today 14:03:12" or "Mon 24 Nov 2026, 09:15:02"."""
    local = at.astimezone()
    now = (now or datetime.now()).astimezone()
    if local.date() == now.date():
        return local.strftime("today %H:%M:%S")
    return local.strftime("%a %d %b %Y, %H:%M:%S")


class InboxView(ttk.Frame):
    def __init__(self, master: tk.Misc, check: Callable[[], None]) -> None:
        super().__init__(master, padding=theme.PAD + 2)
        self._check = check
        self.waiting = 0
        self.new_count = 0
        self.archive_count = 0
        self.new_ids: list[int] = []
        self._archive_job: str | None = None

        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, sticky="ew")
        self.check_button = ttk.Button(
            bar, text="Check messages", style="Accent.TButton", command=self.check
        )
        self.check_button.pack(side="left")
        self.badge = ttk.Label(bar, text="0", style="BadgeIdle.TLabel")
        self.badge.pack(side="left", padx=(8, 0))
        self.badge_text = ttk.Label(bar, text="nothing waiting on the server", style="Muted.TLabel")
        self.badge_text.pack(side="left", padx=(6, 0))
        ttk.Label(bar, text="Ctrl+R", style="Muted.TLabel").pack(side="right")
        self.notice = ttk.Label(self, text="", style="Muted.TLabel")
        self.notice.grid(row=1, column=0, sticky="ew", pady=(8, 8))

        self.view = ReadOnlyText(self)
        self.view.grid(row=2, column=0, sticky="nsew")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(2, weight=1)

        t = self.text = self.view.text
        base = theme.font(self)
        t.configure(font=base, spacing1=0, spacing3=0)
        t.tag_configure(
            "section",
            font=theme.font(self, 1, "bold"),
            foreground=theme.TEXT,
            spacing1=6,
            spacing3=8,
        )
        t.tag_configure("empty", foreground=theme.MUTED, spacing3=10, lmargin1=4)
        t.tag_configure("sender", font=theme.font(self, 0, "bold"), spacing1=8)
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
        t.insert("end", "New messages\n", ("section",))
        t.mark_set("new_top", "end-1c")
        t.mark_gravity("new_top", "left")
        t.insert(
            "end",
            "Nothing fetched yet. Press “Check messages” to fetch your mail.\n",
            ("empty", "newempty"),
        )
        t.insert("end", "\n")
        t.mark_set("arch_head", "end-1c")
        t.mark_gravity("arch_head", "left")
        self._archive_header(0)
        self.set_waiting(0)

    # ----- badge -----------------------------------------------------------------------------
    def set_waiting(self, n: int) -> None:
        self.waiting = max(0, n)
        if self.waiting:
            self.badge.configure(text=str(self.waiting), style="Badge.TLabel")
            word = "message waits" if self.waiting == 1 else "messages wait"
            self.badge_text.configure(text=f"{word} on the server")
        else:
            self.badge.configure(text="0", style="BadgeIdle.TLabel")
            self.badge_text.configure(text="nothing waiting on the server")

    # ----- actions ---------------------------------------------------------------------------
    def check(self) -> None:
        if "disabled" not in self.check_button.state():
            self._check()

    def set_busy(self, busy: bool) -> None:
        self.check_button.state(["disabled"] if busy else ["!disabled"])
        if busy:
            self.say("Checking for messages…")

    def set_enabled(self, enabled: bool) -> None:
        self.check_button.state(["!disabled"] if enabled else ["disabled"])

    def say(self, text: str, style: str = "Muted.TLabel") -> None:
        self.notice.configure(text=text, style=style)

    # ----- content ---------------------------------------------------------------------------
    def show_new(self, messages: Sequence[MessageLike]) -> None:
        """Show freshly fetched messages at the top, newest first (S12); [] means S13."""
        now = datetime.now()
        if not messages:
            self.say(f"No new messages (checked {now.strftime('%H:%M:%S')}).", "Warning.TLabel")
            return
        t = self.text
        ranges = t.tag_ranges("newempty")
        if ranges:
            t.delete(ranges[0], ranges[1])
        for m in sorted(messages, key=lambda m: (m.received_at, m.id)):
            self._insert_at("new_top", m, new=True)
            self.new_ids.append(m.id)
        self.new_count += len(messages)
        n = len(messages)
        self.say(
            f"{n} new {'message' if n == 1 else 'messages'} (checked {now.strftime('%H:%M:%S')}).",
            "Success.TLabel",
        )
        t.see("1.0")

    def load_archive(self, messages: Sequence[MessageLike]) -> None:
        """Append archived messages (newest first) below the new ones, in chunks."""
        if self._archive_job is not None:
            self.after_cancel(self._archive_job)
            self._archive_job = None
        self.archive_count = len(messages)
        self._archive_header(len(messages))
        if messages:
            self._append_chunk(list(messages), 0)

    def _archive_header(self, count: int) -> None:
        t = self.text
        t.delete("arch_head", "end")
        if count:
            t.insert("end", f"Earlier messages, kept on this computer ({count:,})\n", ("section",))
        else:
            t.insert("end", "Earlier messages, kept on this computer\n", ("section",))
            t.insert("end", "No archived messages yet.\n", ("empty",))

    def _append_chunk(self, messages: list[MessageLike], start: int) -> None:
        self._archive_job = None
        for m in messages[start : start + ARCHIVE_CHUNK]:
            self._insert_at("end", m, new=False)
        if start + ARCHIVE_CHUNK < len(messages):
            self._archive_job = self.after(1, self._append_chunk, messages, start + ARCHIVE_CHUNK)

    def _insert_at(self, index: str, m: MessageLike, new: bool) -> None:
        t = self.text
        extra = ("new",) if new else ()
        if index == "end":
            t.insert(
                "end",
                m.sender,
                ("sender", *extra),
                "   " + local_time(m.received_at),
                ("time", *extra),
            )
            if new:
                t.insert("end", "   NEW", ("newmark", *extra))
            t.insert("end", "\n", ("sender", *extra), m.text + "\n", ("body", *extra))
        else:
            chunks: list[tuple[str, tuple[str, ...]]] = [
                (m.sender, ("sender", *extra)),
                ("   " + local_time(m.received_at), ("time", *extra)),
            ]
            if new:
                chunks.append(("   NEW", ("newmark", *extra)))
            chunks += [("\n", ("sender", *extra)), (m.text + "\n", ("body", *extra))]
            # Insert in reverse at a left-gravity mark so the pieces read in order.
            for piece, tags in reversed(chunks):
                t.insert(index, piece, tags)

    def content(self) -> str:
        """The visible text (for tests and copy)."""
        return self.text.get("1.0", "end-1c")

    def first_visible_line(self) -> str:
        index = self.text.index("@0,0")
        return self.text.get(index, f"{index} lineend")
