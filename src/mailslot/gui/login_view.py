"""The login window (S1, S2, S4): server address, username, password when the server wants
one, typed twice for a new name; and the dialog that changes a password."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import ttk
from typing import Literal

from mailslot.gui import theme

Field = Literal["server", "user", "password"]
ConnectFn = Callable[[str, str, str, bool], None]
"""``connect(address, user, password, confirmed)``; ``confirmed``: typed twice for a new name."""


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
        self.repeat_var = tk.StringVar(self)
        self.new_name = False
        self.server_entry = self._row(2, "Server address", self.server_var)
        self.user_entry = self._row(3, "Username", self.user_var)
        self.password_label, self.password_entry = self._password_row(
            4, "Password", self.password_var
        )
        self.repeat_label, self.repeat_entry = self._password_row(
            5, "Repeat password", self.repeat_var
        )
        self.repeat_label.grid_remove()
        self.repeat_entry.grid_remove()
        self.user_var.trace_add("write", lambda *_: self.leave_new_name())
        self.password_hint = ttk.Label(
            card,
            text="",
            style="Muted.TLabel",
            wraplength=440,
            background=theme.SURFACE,
            justify="left",
        )
        self.password_hint.grid(row=6, column=0, columnspan=2, sticky="w", pady=(0, 4))

        self.message = ttk.Label(
            card, text="", wraplength=440, justify="left", background=theme.SURFACE
        )
        self.message.grid(row=7, column=0, columnspan=2, sticky="ew", pady=(8, 4))
        self.progress = ttk.Progressbar(card, mode="indeterminate", length=380)
        self.progress.grid(row=8, column=0, columnspan=2, sticky="ew", pady=(2, 6))
        self.progress.grid_remove()

        buttons = ttk.Frame(card, style="Surface.TFrame")
        buttons.grid(row=9, column=0, columnspan=2, sticky="ew", pady=(10, 0))
        self.connect_button = ttk.Button(
            buttons, text="Connect", style="Accent.TButton", command=self.submit, width=12
        )
        self.connect_button.pack(side="right")
        self.retry_button = ttk.Button(buttons, text="Retry", command=self._on_retry, width=10)
        self.retry_button.pack(side="right", padx=(0, 8))
        self.retry_button.pack_forget()
        card.columnconfigure(1, weight=1)

        for entry in (self.server_entry, self.user_entry, self.password_entry, self.repeat_entry):
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

    def _password_row(self, row: int, text: str, var: tk.StringVar) -> tuple[ttk.Label, ttk.Entry]:
        label = ttk.Label(self.card, text=text, background=theme.SURFACE)
        label.grid(row=row, column=0, sticky="w", padx=(0, 14), pady=5)
        entry = ttk.Entry(self.card, textvariable=var, show="•", width=32, font=theme.font(self, 1))
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
        for w in (
            self.server_entry,
            self.user_entry,
            self.password_entry,
            self.repeat_entry,
            self.connect_button,
        ):
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

    def ask_password(self, user: str) -> None:
        """A neutral request for the password of a name that has one."""
        self.set_busy(None)
        self.set_auth("password")
        self.show_info(f"“{user}” is protected by a password. Please enter it.")
        self.password_entry.focus_set()

    def ask_new_password(self, user: str) -> None:
        """``user`` was never used: its password is being chosen, so it is asked for twice."""
        self.set_busy(None)
        self.set_auth("password")
        self.new_name = True
        self.repeat_label.grid()
        self.repeat_entry.grid()
        self.connect_button.configure(text="Create")
        self.password_hint.grid_remove()  # the sentence below says it all
        self.show_info(
            f"“{user}” is a new name: choose its password. Type it twice; "
            "from now on it protects the name."
        )
        self.focus_first_empty()

    def leave_new_name(self) -> None:
        """Back to the plain sign-in card (another name typed, or the new name created)."""
        if self.new_name:
            self.new_name = False
            self.repeat_var.set("")
            self.repeat_label.grid_remove()
            self.repeat_entry.grid_remove()
            self.connect_button.configure(text="Connect")
            self.password_hint.grid()

    def clear_passwords(self) -> None:
        self.password_var.set("")
        self.repeat_var.set("")

    def focus_first_empty(self) -> None:
        for entry, var in (
            (self.server_entry, self.server_var),
            (self.user_entry, self.user_var),
            (self.password_entry, self.password_var),
            (self.repeat_entry, self.repeat_var),
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
        if self.new_name:
            if not password:
                self.show_error("Please choose a password for the new name.", "password")
                return
            if self.repeat_var.get() != password:
                self.show_error("The two passwords differ. Please type them again.", "password")
                self.repeat_var.set("")
                return
        self._on_connect(
            self.server_var.get().strip(), self.user_var.get().strip(), password, self.new_name
        )


class PasswordDialog(tk.Toplevel):
    """Change the signed-in user's password: the current one, the new one twice."""

    def __init__(
        self,
        master: tk.Misc,
        user: str,
        change: Callable[[PasswordDialog, str, str], None],
    ) -> None:
        super().__init__(master)
        self._change = change
        self.title(f"Change the password of {user}")
        self.transient(master.winfo_toplevel())
        self.resizable(False, False)
        self.configure(background=theme.SURFACE)
        card = ttk.Frame(self, style="Surface.TFrame", padding=(24, 20))
        card.pack(fill="both", expand=True)
        ttk.Label(
            card, text=f"New password for {user}", style="Section.TLabel", background=theme.SURFACE
        ).grid(row=0, column=0, columnspan=2, sticky="w", pady=(0, 12))
        self.old_var, self.new_var, self.repeat_var = (tk.StringVar(self) for _ in range(3))
        self.entries = []
        for row, (text, var) in enumerate(
            (
                ("Current password", self.old_var),
                ("New password", self.new_var),
                ("Repeat new password", self.repeat_var),
            ),
            start=1,
        ):
            ttk.Label(card, text=text, background=theme.SURFACE).grid(
                row=row, column=0, sticky="w", padx=(0, 14), pady=5
            )
            entry = ttk.Entry(card, textvariable=var, show="•", width=28)
            entry.grid(row=row, column=1, sticky="ew", pady=5)
            entry.bind("<Return>", lambda _e: self.submit())
            self.entries.append(entry)
        self.message = ttk.Label(
            card, text="", wraplength=360, justify="left", background=theme.SURFACE
        )
        self.message.grid(row=4, column=0, columnspan=2, sticky="ew", pady=(8, 4))
        buttons = ttk.Frame(card, style="Surface.TFrame")
        buttons.grid(row=5, column=0, columnspan=2, sticky="e", pady=(8, 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.destroy, width=10)
        self.cancel_button.pack(side="right")
        self.change_button = ttk.Button(
            buttons, text="Change", style="Accent.TButton", command=self.submit, width=10
        )
        self.change_button.pack(side="right", padx=(0, 8))
        self.bind("<Escape>", lambda _e: self.destroy())
        self.entries[0].focus_set()

    def submit(self) -> None:
        new = self.new_var.get()
        if not new:
            self.failed("Please type the new password.")
        elif self.repeat_var.get() != new:
            self.failed("The two new passwords differ. Please type them again.")
        else:
            self.change_button.state(["disabled"])
            self.message.configure(text="Changing…", style="Muted.TLabel")
            self._change(self, self.old_var.get(), new)

    def failed(self, sentence: str) -> None:
        self.change_button.state(["!disabled"])
        self.message.configure(text=sentence, style="Error.TLabel")
