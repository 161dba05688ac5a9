"""Inbox (S11–S13, B4, B5): the waiting-count badge, Check messages, fetch-on-arrival,
new messages above the ones kept on this computer."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable, Sequence
from datetime import datetime
from tkinter import ttk

from mailslot.gui import theme
from mailslot.gui.archive import MessageLike
from mailslot.gui.messages import MessageText, ReplyFn

ARCHIVE_CHUNK = 400
NOTHING_FETCHED = "Nothing fetched yet. Press “Check messages” to fetch your mail."
NOTHING_FETCHED_AUTO = "Nothing new yet. New mail is fetched as it arrives."


class InboxView(ttk.Frame):
    def __init__(
        self,
        master: tk.Misc,
        check: Callable[[], None],
        reply: ReplyFn,
        fetch_on_arrival: Callable[[bool], None],
    ) -> None:
        super().__init__(master, padding=theme.PAD + 2)
        self._check = check
        self._fetch_on_arrival = fetch_on_arrival
        self.waiting = 0
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
        self.auto_var = tk.BooleanVar(self, value=False)
        self.auto_check = ttk.Checkbutton(
            self,
            text="Fetch new mail as it arrives",
            variable=self.auto_var,
            command=lambda: self._fetch_on_arrival(self.auto_var.get()),
        )
        self.auto_check.grid(row=1, column=0, sticky="w", pady=(8, 0))
        self.notice = ttk.Label(self, text="", style="Muted.TLabel")
        self.notice.grid(row=2, column=0, sticky="ew", pady=(4, 8))

        self.view = MessageText(self, reply)
        self.view.grid(row=3, column=0, sticky="nsew")
        self.columnconfigure(0, weight=1)
        self.rowconfigure(3, weight=1)

        self.text = self.view.text
        self._new: list[MessageLike] = []
        self._auto = False
        self._render(0)
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

    def set_auto(self, on: bool) -> None:
        """Show whether mail is fetched as it arrives (the setting, not a click)."""
        self.auto_var.set(on)
        self._auto = on
        ranges = self.text.tag_ranges("newempty")
        if ranges:
            self.text.delete(ranges[0], ranges[1])
            self.text.insert("new_top", self._nothing_new() + "\n", ("empty", "newempty"))

    def _nothing_new(self) -> str:
        return NOTHING_FETCHED_AUTO if self._auto else NOTHING_FETCHED

    # ----- actions ---------------------------------------------------------------------------
    def check(self) -> None:
        if "disabled" not in self.check_button.state():
            self._check()

    @property
    def busy(self) -> bool:
        return "disabled" in self.check_button.state()

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
        now = datetime.now().strftime("%H:%M:%S")
        if not messages:
            self.say(f"No new messages (checked {now}).", "Warning.TLabel")
            return
        t = self.text
        ranges = t.tag_ranges("newempty")
        if ranges:
            t.delete(ranges[0], ranges[1])
        for m in sorted(messages, key=lambda m: (m.received_at, m.id)):
            self.view.insert_message("new_top", m, new=True)
            self.new_ids.append(m.id)
            self._new.insert(0, m)
        n = len(messages)
        self.say(
            f"{n} new {'message' if n == 1 else 'messages'} (checked {now}).", "Success.TLabel"
        )
        t.see("1.0")

    def load_archive(self, messages: Sequence[MessageLike]) -> None:
        """Show archived messages (newest first) below the new ones, in chunks."""
        if self._archive_job is not None:
            self.after_cancel(self._archive_job)
            self._archive_job = None
        self._render(len(messages))
        if messages:
            self._append_chunk(list(messages), 0)

    def _render(self, archived: int) -> None:
        """Lay out both sections afresh: new messages (marked "new_top" above them) and the
        heading of ``archived`` messages kept on this computer, which follow at the end."""
        t = self.text
        t.delete("1.0", "end")
        t.insert("end", "New messages\n", ("section",))
        t.mark_set("new_top", "2.0")
        t.mark_gravity("new_top", "left")
        for m in self._new:
            self.view.insert_message("end", m, new=True)
        if not self._new:
            t.insert("end", self._nothing_new() + "\n", ("empty", "newempty"))
        title = "Earlier messages, kept on this computer" + (f" ({archived:,})" if archived else "")
        t.insert("end", "\n" + title + "\n", ("section",))
        if not archived:
            t.insert("end", "No archived messages yet.\n", ("empty",))

    def _append_chunk(self, messages: list[MessageLike], start: int) -> None:
        self._archive_job = None
        for m in messages[start : start + ARCHIVE_CHUNK]:
            self.view.insert_message("end", m)
        if start + ARCHIVE_CHUNK < len(messages):
            self._archive_job = self.after(1, self._append_chunk, messages, start + ARCHIVE_CHUNK)

    def content(self) -> str:
        """The visible text (for tests and copy)."""
        return self.text.get("1.0", "end-1c")

    def first_visible_line(self) -> str:
        index = self.text.index("@0,0")
        return self.text.get(index, f"{index} lineend")
