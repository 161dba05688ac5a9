"""Compose (S7–S10): mode, recipients (picked or typed, checked against the list), text, Send."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from datetime import datetime
from tkinter import ttk
from typing import Literal

from mailslot.gui import theme
from mailslot.gui.roster import Roster
from mailslot.gui.widgets import Debouncer, ScrolledTree, scroll_text
from mailslot.protocol.names import name_key

Mode = Literal["one", "many", "all"]
SendFn = Callable[[str, list[str], Mode], None]

MODE_LABELS: dict[Mode, str] = {"one": "One person", "many": "Several people", "all": "Everyone"}
PICKER_HINTS: dict[Mode, str] = {
    "one": "Click a name, or type it above and press Enter.",
    "many": "Click names to add or remove them, or type them above and press Enter.",
    "all": "",
}


class ComposeView(ttk.Frame):
    def __init__(
        self, master: tk.Misc, roster: Roster, send: SendFn, max_text: int, max_recipients: int
    ) -> None:
        """``max_text`` and ``max_recipients``: the server's limits, from its greeting."""
        super().__init__(master, padding=theme.PAD + 2)
        self.roster = roster
        self._send = send
        self.me = ""
        self.max_text = max_text
        self.max_recipients = max_recipients
        self.connected = False
        self.sending = False
        self._shown: list[str] = []
        self._rendered_version = -1

        # Row 0: mode selector.
        top = ttk.Frame(self)
        top.grid(row=0, column=0, columnspan=2, sticky="ew")
        ttk.Label(top, text="Send to", style="Section.TLabel").pack(side="left", padx=(0, 12))
        self.mode_var = tk.StringVar(self, value="one")
        self.mode_buttons: dict[Mode, ttk.Radiobutton] = {}
        for mode, label in MODE_LABELS.items():
            rb = ttk.Radiobutton(
                top, text=label, value=mode, variable=self.mode_var, command=self._mode_changed
            )
            rb.pack(side="left", padx=(0, 14))
            self.mode_buttons[mode] = rb

        # Row 1: typed recipient with completion.
        typed = ttk.Frame(self)
        typed.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(theme.PAD, 4))
        ttk.Label(typed, text="Recipient").pack(side="left", padx=(0, 8))
        self.to_var = tk.StringVar(self)
        self.to_entry = ttk.Entry(typed, textvariable=self.to_var, width=28)
        self.to_entry.pack(side="left", fill="x", expand=True)
        self.add_button = ttk.Button(typed, text="Add", command=self.accept_typed, width=6)
        self.add_button.pack(side="left", padx=(8, 0))
        self.to_entry.bind("<KeyRelease>", self._complete)
        self.to_entry.bind("<Return>", self._enter_in_entry)
        self.to_entry.bind("<KP_Enter>", self._enter_in_entry)
        self.to_entry.bind("<Tab>", self._tab_in_entry)
        self.to_var.trace_add("write", lambda *_: self.validate())

        # Row 2: picker + "To:" summary.
        self.picker = ScrolledTree(
            self, show="tree", selectmode="browse", style="Picker.Treeview", height=6
        )
        self.tree = self.picker.tree
        self.tree.column("#0", width=220, stretch=True)
        self.tree.tag_configure("offline", foreground=theme.MUTED)
        self.picker.grid(row=2, column=0, columnspan=2, sticky="nsew")
        self.picker_empty = ttk.Label(
            self.picker,
            text="Nobody else has used this server yet.\n"
            "Names appear here as soon as people sign in.",
            style="Muted.TLabel",
            background=theme.SURFACE,
            justify="center",
        )
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self.validate())
        self.tree.bind("<Button-1>", self._click)
        self.tree.bind("<space>", self._space)
        self.picker_hint = ttk.Label(self, text=PICKER_HINTS["one"], style="Muted.TLabel")
        self.picker_hint.grid(row=3, column=0, columnspan=2, sticky="w", pady=(4, 0))
        self.to_summary = ttk.Label(self, text="To: nobody yet", wraplength=600, justify="left")
        self.to_summary.grid(row=4, column=0, columnspan=2, sticky="ew", pady=(6, theme.PAD))

        # Row 5: text box.
        ttk.Label(self, text="Message", style="Section.TLabel").grid(
            row=5, column=0, columnspan=2, sticky="w", pady=(0, 4)
        )
        box = ttk.Frame(self)
        box.grid(row=6, column=0, columnspan=2, sticky="nsew")
        self.text = tk.Text(
            box,
            height=5,
            wrap="word",
            undo=True,
            relief="flat",
            borderwidth=0,
            highlightthickness=1,
            padx=8,
            pady=6,
            highlightbackground=theme.BORDER,
            highlightcolor=theme.ACCENT,
            background=theme.SURFACE,
            foreground=theme.TEXT,
            font=theme.font(self, 1),
            insertbackground=theme.TEXT,
        )
        scroll_text(box, self.text)
        self.text.bind("<<Modified>>", self._text_modified)
        self.text.bind("<Tab>", self._focus_next)
        self.text.bind("<Shift-Tab>", self._focus_prev)
        for w in (self.text, self.to_entry, self.tree):
            w.bind("<Control-Return>", self._ctrl_enter)
            w.bind("<Control-KP_Enter>", self._ctrl_enter)

        # Row 7: counter, hint, Send.
        bottom = ttk.Frame(self)
        bottom.grid(row=7, column=0, columnspan=2, sticky="ew", pady=(8, 0))
        self.counter = ttk.Label(bottom, text="", style="Muted.TLabel")
        self.counter.pack(side="left")
        self.send_button = ttk.Button(
            bottom, text="Send", style="Accent.TButton", command=self.submit, width=10
        )
        self.send_button.pack(side="right")
        ttk.Label(bottom, text="Ctrl+Enter", style="Muted.TLabel").pack(side="right", padx=8)
        self.hint = ttk.Label(self, text="", style="Muted.TLabel", wraplength=600, justify="left")
        self.hint.grid(row=8, column=0, columnspan=2, sticky="ew", pady=(6, 0))
        self.feedback = ttk.Label(self, text="", wraplength=600, justify="left")
        self.feedback.grid(row=9, column=0, columnspan=2, sticky="ew", pady=(2, 0))

        self.columnconfigure(0, weight=1)
        self.rowconfigure(2, weight=3)
        self.rowconfigure(6, weight=2)
        self.bind("<Configure>", self._resized)
        self._refresh = Debouncer(self, self.render)
        roster.on_change(self.schedule)
        self.validate()

    # ----- state from the app -------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        value = self.mode_var.get()
        return value if value in ("one", "many", "all") else "one"  # type: ignore[return-value]

    def set_me(self, name: str) -> None:
        self.me = name
        self._rendered_version = -1
        self.render()

    def set_limits(self, max_text: int, max_recipients: int) -> None:
        self.max_text = max_text
        self.max_recipients = max_recipients
        self.validate()

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.validate()

    def set_mode(self, mode: Mode) -> None:
        self.mode_var.set(mode)
        self._mode_changed()

    def pick(self, name: str) -> None:
        """Write to ``name`` (from the users pane): one-person mode, that name selected."""
        if self.mode == "all":
            self.set_mode("one")
        self._select(name)
        self.text.focus_set()
        self.validate()

    def address(self, names: list[str], *, everyone: bool = False) -> None:
        """Start a message to ``names`` (one person or several), or to everyone (a reply)."""
        if everyone:
            self.set_mode("all")
        else:
            self.set_mode("one" if len(names) == 1 else "many")
            self.tree.selection_set(())
            self.to_var.set("")
            for name in names:
                if self.roster.lookup(name) is None:
                    self.to_var.set(name)  # no longer on the list: said so, Send disabled
                else:
                    self._select(name)
        # After the notebook's own focus handling of a tab change.
        self.after_idle(self.text.focus_set)
        self.validate()

    def selected_names(self) -> list[str]:
        names = []
        for iid in self.tree.selection():
            person = self.roster.lookup(iid)
            if person is not None:
                names.append(person.name)
        return names

    def message_text(self) -> str:
        return self.text.get("1.0", "end-1c")

    def set_text(self, text: str) -> None:
        self.text.delete("1.0", "end")
        self.text.insert("1.0", text)
        self.validate()

    # ----- picker rendering ----------------------------------------------------------------
    def schedule(self) -> None:
        self._refresh.schedule()

    def render(self) -> None:
        self._refresh.cancel()
        if self._rendered_version == self.roster.version:
            return
        me = name_key(self.me) if self.me else None
        people = [p for p in self.roster.people() if name_key(p.name) != me]
        wanted = [name_key(p.name) for p in people]
        tree = self.tree
        selected = set(tree.selection())
        if wanted != self._shown:
            tree.delete(*tree.get_children())
            for p, key in zip(people, wanted, strict=True):
                tree.insert(
                    "",
                    "end",
                    iid=key,
                    text=" " + p.name + ("" if p.online else "  · offline"),
                    tags=("online" if p.online else "offline",),
                )
            keep = [k for k in wanted if k in selected]
            if keep and self.mode != "all":
                tree.selection_set(keep)
        else:
            for p, key in zip(people, wanted, strict=True):
                tree.item(
                    key,
                    text=" " + p.name + ("" if p.online else "  · offline"),
                    tags=("online" if p.online else "offline",),
                )
        self._shown = wanted
        self._rendered_version = self.roster.version
        if wanted:
            self.picker_empty.place_forget()
        else:
            self.picker_empty.place(relx=0.5, rely=0.5, anchor="center")
        self.validate()

    # ----- interaction ---------------------------------------------------------------------
    def _mode_changed(self) -> None:
        mode = self.mode
        tree = self.tree
        if mode == "all":
            tree.selection_set(())
            tree.state(["disabled"])
            self.to_entry.state(["disabled"])
            self.add_button.state(["disabled"])
            self.to_var.set("")
        else:
            tree.state(["!disabled"])
            self.to_entry.state(["!disabled"])
            self.add_button.state(["!disabled"])
            tree.configure(selectmode="browse" if mode == "one" else "extended")
            sel = tree.selection()
            if mode == "one" and len(sel) > 1:
                tree.selection_set(sel[0])
        self.picker_hint.configure(text=PICKER_HINTS[mode])
        self.feedback.configure(text="")
        self.validate()

    def _click(self, event: tk.Event[ttk.Treeview]) -> str | None:
        if self.mode == "all":
            return "break"
        if self.mode == "many":
            iid = self.tree.identify_row(event.y)
            if iid:
                self._toggle(iid)
                self.tree.focus(iid)
                self.tree.focus_set()
            return "break"
        return None

    def _space(self, _event: object) -> str | None:
        if self.mode == "many":
            iid = self.tree.focus()
            if iid:
                self._toggle(iid)
            return "break"
        return None

    def _select(self, name: str) -> None:
        """Select ``name`` in the picker (instead of the selection in one-person mode)."""
        self.render()  # a name that just appeared may still wait for the coalesced refresh
        key = name_key(name)
        if self.tree.exists(key):
            if self.mode == "one":
                self.tree.selection_set(key)
            else:
                self.tree.selection_add(key)
            self.tree.see(key)

    def _toggle(self, iid: str) -> None:
        if iid in self.tree.selection():
            self.tree.selection_remove(iid)
        else:
            self.tree.selection_add(iid)

    def _complete(self, event: tk.Event[ttk.Entry]) -> None:
        self.to_entry.configure(style="TEntry")
        if (
            event.keysym
            in {
                "BackSpace",
                "Delete",
                "Left",
                "Right",
                "Home",
                "End",
                "Return",
                "KP_Enter",
                "Tab",
                "Shift_L",
                "Shift_R",
                "Control_L",
                "Control_R",
                "Escape",
            }
            or not event.char
        ):
            return
        entry = self.to_entry
        typed = entry.get()[: entry.index("insert")]
        if not typed:
            return
        matches = self.roster.completions(typed, exclude=self.me)
        if not matches:
            return
        best = matches[0]
        entry.delete(0, "end")
        entry.insert(0, typed + best[len(typed) :])
        entry.icursor(len(typed))
        entry.selection_range(len(typed), "end")

    def _enter_in_entry(self, _event: object) -> str:
        self.accept_typed()
        return "break"

    def _tab_in_entry(self, _event: object) -> str | None:
        if self.to_entry.selection_present():
            self.to_entry.selection_clear()
            self.to_entry.icursor("end")
            return "break"
        return None

    def typed_problem(self) -> str | None:
        typed = self.to_var.get().strip()
        if not typed:
            return None
        person = self.roster.lookup(typed)
        if person is None:
            return f"“{typed}” is not on the server's list of users. Pick a name from the list."
        if self.me and name_key(person.name) == name_key(self.me):
            return "That is you. Pick someone else."
        return None

    def accept_typed(self) -> bool:
        """Move the typed name into the picker; reject names that are not on the list (S8)."""
        typed = self.to_var.get().strip()
        if not typed or self.mode == "all":
            return True
        problem = self.typed_problem()
        if problem is not None:
            self.to_entry.configure(style="Invalid.TEntry")
            self.to_entry.selection_range(0, "end")
            self.to_entry.focus_set()
            self._say(problem, "Error.TLabel")
            self.validate()
            return False
        person = self.roster.lookup(typed)
        assert person is not None
        self._select(person.name)
        self.to_var.set("")
        self.to_entry.configure(style="TEntry")
        self.feedback.configure(text="")
        self.validate()
        return True

    def _text_modified(self, _event: object) -> None:
        if self.text.edit_modified():
            self.text.edit_modified(False)
            self.validate()

    def _focus_next(self, _event: object) -> str:
        return self._focus(self.text.tk_focusNext())

    def _focus_prev(self, _event: object) -> str:
        return self._focus(self.text.tk_focusPrev())

    @staticmethod
    def _focus(target: tk.Misc | None) -> str:
        """Tab out of the text box (Tab would insert a tab character)."""
        if target is not None:
            target.focus_set()
        return "break"

    def _ctrl_enter(self, _event: object) -> str:
        self.submit()
        return "break"

    def _resized(self, event: tk.Event[tk.Misc]) -> None:
        width = max(300, event.width - 2 * theme.PAD)
        for label in (self.hint, self.feedback, self.to_summary):
            label.configure(wraplength=width)

    # ----- validation and sending ------------------------------------------------------------
    def recipients(self) -> list[str]:
        names = self.selected_names()
        typed = self.to_var.get().strip()
        if typed and self.typed_problem() is None:
            person = self.roster.lookup(typed)
            if person is not None and all(name_key(n) != name_key(person.name) for n in names):
                names = [person.name] if self.mode == "one" else [*names, person.name]
        return names

    def problem(self) -> str | None:
        """Why Send is disabled right now, as a sentence; None when the input is valid."""
        if not self.connected:
            return "Not connected. Sending is possible again once the connection is back."
        if self.sending:
            return "Sending…"
        mode = self.mode
        typed = self.typed_problem()
        if typed is not None and mode != "all":
            return typed
        names = self.recipients()
        if mode == "one" and len(names) != 1:
            return "Pick the person to write to."
        if mode == "many":
            if not names:
                return "Pick one or more people to write to."
            if len(names) > self.max_recipients:
                return f"At most {self.max_recipients} recipients per message; {len(names)} picked."
        if mode == "all" and not self._shown:
            return "There is nobody else on this server yet."
        text = self.message_text()
        if not text.strip():
            return "Write a message."
        if len(text) > self.max_text:
            return (
                f"The message is {len(text) - self.max_text} characters over the "
                f"server's limit of {self.max_text}."
            )
        return None

    def validate(self) -> None:
        n = len(self.message_text())
        over = n > self.max_text
        self.counter.configure(
            text=f"{n:,} / {self.max_text:,} characters",
            style="Error.TLabel" if over else "Muted.TLabel",
        )
        mode = self.mode
        if mode == "all":
            count = len(self._shown)
            self.to_summary.configure(
                text=f"To: everyone else on this server ({count} "
                f"{'person' if count == 1 else 'people'})"
            )
        else:
            names = self.recipients()
            self.to_summary.configure(text="To: " + (", ".join(names) if names else "nobody yet"))
        problem = self.problem()
        self.send_button.state(["disabled"] if problem else ["!disabled"])
        said = str(self.feedback.cget("text"))
        # A problem already said in red below is not repeated in grey.
        self.hint.configure(text="" if problem and problem == said else problem or "Ready to send.")

    def submit(self) -> None:
        if self.to_var.get().strip() and self.mode != "all" and not self.accept_typed():
            return
        problem = self.problem()
        if problem is not None:
            self._say(problem, "Error.TLabel")
            return
        mode = self.mode
        names = [] if mode == "all" else self.recipients()
        self.sending = True
        self._say("Sending…", "Muted.TLabel")
        self.validate()
        self._send(self.message_text(), names, mode)

    def send_succeeded(
        self, recipients: int, names: list[str], everyone: bool, at: datetime
    ) -> None:
        self.sending = False
        when = at.astimezone().strftime("%H:%M:%S")
        if everyone:
            who = f"everyone ({recipients} {'person' if recipients == 1 else 'people'})"
        elif len(names) == 1:
            who = names[0]
        else:
            who = f"{', '.join(names)} ({recipients} people)"
        self._say(f"✓ Sent to {who} at {when}.", "Success.TLabel")
        self.text.delete("1.0", "end")
        self.text.edit_reset()
        self.to_var.set("")
        self.tree.selection_set(())
        self.validate()
        (self.text if self.mode == "all" else self.to_entry).focus_set()

    def send_failed(self, sentence: str) -> None:
        self.sending = False
        self._say(f"Not sent: {sentence}", "Error.TLabel")
        self.validate()

    def _say(self, text: str, style: str) -> None:
        self.feedback.configure(text=text, style=style)
