"""The login window (S1, S2, S4): server address, username, password when the server wants one."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Literal

from mailslot.gui import theme

Field = Literal["server", "user", "password"]
ConnectFn = Callable[[str, str, str], None]


class LoginView(ttk.Frame):
    """A centred card; errors show inside it as sentences, never in a dialog."""

    def __init__(
        self, master: tk.Misc, on_connect: ConnectFn, on_retry: Callable[[], None]
    ) -> None:
        super().__init__(master)
        self._on_connect = on_connect
        self._on_retry = on_retry
        self.auth: str | None = None  # "password", "none" or unknown

        card = self.card = ttk.Frame(self, style="Surface.TFrame", padding=(28, 24))
        card.place(relx=0.5, rely=0.45, anchor="center")
        ttk.Label(card, text="Mailslot", style="Title.TLabel", background=theme.SURFACE).grid(
            row=0, column=0, columnspan=2, sticky="w"
        )
        self.subtitle = ttk.Label(
            card,
            text="Sign in to a Mailslot server to send and pick up messages.",
            style="Muted.TLabel",
            wraplength=440,
        )
        self.subtitle.grid(row=1, column=0, columnspan=2, sticky="w", pady=(2, 18))
        for label in (self.subtitle,):
            label.configure(background=theme.SURFACE)

        self.server_var = tk.StringVar(self)
        self.user_var = tk.StringVar(self)
        self.password_var = tk.StringVar(self)
        self.server_entry = self._row(2, "Server address", self.server_var)
        self.user_entry = self._row(3, "Username", self.user_var)
        self.password_label, self.password_entry = self._password_row(4)
        self.password_hint = ttk.Label(
            card,
            text="",
            style="Muted.TLabel",
            wraplength=440,
            background=theme.SURFACE,
            justify="left",
        )
        self.password_hint.grid(row=5, column=0, columnspan=2, sticky="w", pady=(0, 4))

        self.message = ttk.Label(
            card, text="", wraplength=440, justify="left", background=theme.SURFACE
        )
        self.message.grid(row=6, column=0, columnspan=2, sticky="ew", pady=(8, 4))
        self.progress = ttk.Progressbar(card, mode="indeterminate", length=380)
        self.progress.grid(row=7, column=0, columnspan=2, sticky="ew", pady=(2, 6))
        self.progress.grid_remove()

        buttons = ttk.Frame(card, style="Surface.TFrame")
        buttons.grid(row=8, column=0, columnspan=2, sticky="ew", pady=(10, 0))
        self.connect_button = ttk.Button(
            buttons, text="Connect", style="Accent.TButton", command=self.submit, width=12
        )
        self.connect_button.pack(side="right")
        self.retry_button = ttk.Button(buttons, text="Retry", command=self._on_retry, width=10)
        self.retry_button.pack(side="right", padx=(0, 8))
        self.retry_button.pack_forget()
        card.columnconfigure(1, weight=1)

        for entry in (self.server_entry, self.user_entry, self.password_entry):
            entry.bind("<Return>", self._enter)
            entry.bind("<KP_Enter>", self._enter)
            entry.bind("<Key>", lambda _e: self._typed(), add="+")
        self.set_auth(None)

    def _row(self, row: int, label: str, var: tk.StringVar) -> ttk.Entry:
        ttk.Label(self.card, text=label, background=theme.SURFACE).grid(
            row=row, column=0, sticky="w", padx=(0, 14), pady=5
        )
        entry = ttk.Entry(self.card, textvariable=var, width=32, font=theme.font(self, 1))
        entry.grid(row=row, column=1, sticky="ew", pady=5)
        return entry

    def _password_row(self, row: int) -> tuple[ttk.Label, ttk.Entry]:
        label = ttk.Label(self.card, text="Password", background=theme.SURFACE)
        label.grid(row=row, column=0, sticky="w", padx=(0, 14), pady=5)
        entry = ttk.Entry(
            self.card, textvariable=self.password_var, show="•", width=32, font=theme.font(self, 1)
        )
        entry.grid(row=row, column=1, sticky="ew", pady=5)
        return label, entry

    # ----- state -----------------------------------------------------------------------------
    def set_auth(self, auth: str | None) -> None:
        """Show the password field unless the server is known to run in open mode."""
        self.auth = auth
        if auth == "none":
            self.password_label.grid_remove()
            self.password_entry.grid_remove()
            self.password_hint.configure(text="This server is open: a username is all it needs.")
        else:
            self.password_label.grid()
            self.password_entry.grid()
            if auth == "password":
                self.password_hint.configure(
                    text="The first password used with a name protects it from then on."
                )
            else:
                self.password_hint.configure(
                    text="Leave the password empty if the server runs in open mode."
                )

    @property
    def password_visible(self) -> bool:
        return bool(self.password_entry.winfo_manager())

    def set_busy(self, text: str | None) -> None:
        busy = text is not None
        for w in (self.server_entry, self.user_entry, self.password_entry, self.connect_button):
            w.state(["disabled"] if busy else ["!disabled"])
        if busy:
            self.retry_button.pack_forget()
            self.message.configure(text=text or "", style="Muted.TLabel", background=theme.SURFACE)
            self.progress.grid()
            self.progress.start(12)
        else:
            self.progress.stop()
            self.progress.grid_remove()

    def show_error(self, sentence: str, focus: Field = "user", retry: bool = False) -> None:
        self.set_busy(None)
        self.message.configure(text=sentence, style="Error.TLabel", background=theme.SURFACE)
        if retry:
            self.retry_button.pack(side="right", padx=(0, 8))
        else:
            self.retry_button.pack_forget()
        entry = {
            "server": self.server_entry,
            "user": self.user_entry,
            "password": self.password_entry,
        }[focus]
        entry.focus_set()
        entry.selection_range(0, "end")
        entry.icursor("end")

    def show_info(self, sentence: str) -> None:
        self.message.configure(text=sentence, style="Muted.TLabel", background=theme.SURFACE)

    def focus_first_empty(self) -> None:
        for entry, var in (
            (self.server_entry, self.server_var),
            (self.user_entry, self.user_var),
            (self.password_entry, self.password_var),
        ):
            if not var.get() and entry.winfo_manager():
                entry.focus_set()
                return
        self.connect_button.focus_set()

    def _typed(self) -> None:
        if "disabled" in self.connect_button.state():
            return
        style = str(self.message.cget("style"))
        if style == "Error.TLabel":
            self.message.configure(style="Muted.TLabel")

    def _enter(self, _event: object) -> str:
        self.submit()
        return "break"

    def submit(self) -> None:
        if "disabled" in self.connect_button.state():
            return
        password = self.password_var.get() if self.auth != "none" else ""
        self._on_connect(self.server_var.get().strip(), self.user_var.get().strip(), password)
