"""The Mailslot desktop client (S1–S13, B4, B5): login, users, compose, inbox.

All network work goes through :class:`mailslot.client.SyncClient` futures and all
disk work through worker threads; the Tk thread only polls (see :mod:`tkasync`).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import tkinter as tk
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk
from typing import Any, Literal

from mailslot.client import (
    Disconnected,
    Event,
    LoginResult,
    MailWaiting,
    Message,
    SendResult,
    ServerInfo,
    SyncClient,
    UserInfo,
    UserNew,
    UserOffline,
    UserOnline,
)
from mailslot.client.address import format_address, parse_address
from mailslot.gui import theme
from mailslot.gui.archive import Archive, ArchivedMessage, archive_path
from mailslot.gui.compose import ComposeView, Mode
from mailslot.gui.errors import login_sentence, send_sentence
from mailslot.gui.inbox import InboxView
from mailslot.gui.login_view import LoginView
from mailslot.gui.roster import Roster, name_problem
from mailslot.gui.settings import ClientSettings
from mailslot.gui.tkasync import Pump
from mailslot.gui.users_pane import UsersPane

log = logging.getLogger(__name__)

State = Literal["login", "connecting", "online", "reconnecting", "closed"]
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PING_EVERY_MS = 30_000
ARCHIVE_SHOWN = 5_000


class NeedPassword(Exception):
    """The server runs in password mode and no password was typed."""


@dataclass
class Session:
    sc: SyncClient
    info: ServerInfo
    login: LoginResult
    users: list[UserInfo]


def open_session(
    host: str,
    port: int,
    user: str,
    password: str,
    ssl_context: ssl.SSLContext | None,
    seen: set[int],
    probe: dict[str, str],
) -> Session:
    """Worker thread: connect, log in, fetch the user list; the socket is closed on failure.

    A module-level function on purpose: worker threads must hold no reference to Tk objects.
    ``probe["auth"]`` receives the server's auth mode even when the login fails.
    """
    sc = SyncClient.connect(host, port, ssl_context=ssl_context, timeout=10.0, seen_ids=seen)
    try:
        info = sc.server_info
        probe["auth"] = info.auth
        if info.auth == "password" and not password:
            raise NeedPassword()
        result = sc.login(user, password if info.auth == "password" else None)
        users = sc.users()
        return Session(sc, info, result, users)
    except BaseException:
        sc.close()
        raise


def open_archive(
    address: str, user: str, base: Path | None
) -> tuple[Archive, list[ArchivedMessage]]:
    archive = Archive(archive_path(address, user, base))
    return archive, archive.load(ARCHIVE_SHOWN)


class ClientApp:
    """One client window. ``window`` is the Tk root or a Toplevel (the demo opens three)."""

    def __init__(
        self,
        window: tk.Tk | tk.Toplevel,
        *,
        server: str | None = None,
        user: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        data_dir: Path | None = None,
        remember: bool = True,
        autoconnect: bool = False,
    ) -> None:
        self.window = window
        self.ssl_context = ssl_context
        self.data_dir = data_dir
        self.remember = remember
        self.settings = ClientSettings.load() if remember else ClientSettings()
        self.state: State = "login"
        self.session: Session | None = None
        self.archive: Archive | None = None
        self.roster = Roster()
        self.host = ""
        self.port = 0
        self.user = ""
        self._password = ""
        self._seen: set[int] = set()
        self._probe: dict[str, str] = {}
        self._attempt = 0
        self._retry_job: str | None = None
        self._ping_job: str | None = None
        self._retry_at = 0.0
        self.main: ttk.Frame | None = None

        theme.apply(window)
        window.title("Mailslot")
        window.geometry("1000x700")
        window.minsize(800, 600)
        window.protocol("WM_DELETE_WINDOW", self.close)
        self.pump = Pump(window)

        self.login = LoginView(window, self._connect, self._retry_login)
        self.login.server_var.set(server or self.settings.server)
        self.login.user_var.set(user if user is not None else self.settings.user)
        if password is not None:
            self.login.password_var.set(password)
        self.login.set_auth(self.settings.auth_modes.get(self.login.server_var.get()))
        self.login.pack(fill="both", expand=True)
        self.login.after_idle(self.login.focus_first_empty)

        for seq in ("<Control-r>", "<Control-R>", "<F5>"):
            window.bind(seq, lambda _e: self.check())
        window.bind("<Control-Key-1>", lambda _e: self._show_tab(0))
        window.bind("<Control-Key-2>", lambda _e: self._show_tab(1))
        if autoconnect and self.login.user_var.get():
            window.after_idle(self.login.submit)

    # ===== login ==============================================================================
    def _connect(self, address: str, user: str, password: str) -> None:
        if self.state not in ("login",):
            return
        try:
            host, port = parse_address(address)
        except ValueError as exc:
            self.login.show_error(str(exc), "server")
            return
        problem = name_problem(user)
        if problem is not None:
            self.login.show_error(problem, "user")
            return
        self.host, self.port, self.user, self._password = host, port, user, password
        self.state = "connecting"
        self.login.set_busy(f"Connecting to {format_address(host, port)} as “{user}”…")
        self.pump.run(
            open_session,
            host,
            port,
            user,
            password,
            self.ssl_context,
            self._seen,
            self._probe,
            done=self._login_done,
        )

    def _retry_login(self) -> None:
        self.login.submit()

    def _remember_auth(self) -> None:
        auth = self._probe.get("auth")
        if auth is None:
            return
        self.login.set_auth(auth)
        self.settings.auth_modes[self.address] = auth

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def _login_done(self, fut: Future[Session]) -> None:
        if self.state != "connecting":
            if fut.exception() is None:
                threading.Thread(target=fut.result().sc.close, daemon=True).start()
            return
        self._remember_auth()
        exc = fut.exception()
        if exc is not None:
            self.state = "login"
            if isinstance(exc, NeedPassword):
                self.login.show_error(
                    "This server protects every name with a password. "
                    "Please enter yours (a new name's first password sets it).",
                    "password",
                )
                return
            sentence, field = login_sentence(exc, self.user, self.address)
            self.login.show_error(sentence, field, retry=field == "server")  # type: ignore[arg-type]
            return
        session = fut.result()
        self.user = session.login.user
        self.settings.server = self.address
        self.settings.user = self.user
        if self.remember:
            settings = self.settings
            self.pump.run(settings.save, done=lambda f: None)
        self._build_main()
        self._attach(session)
        self.pump.run(
            open_archive, self.address, self.user, self.data_dir, done=self._archive_loaded
        )

    # ===== main view ==========================================================================
    def _build_main(self) -> None:
        self.login.set_busy(None)
        self.login.pack_forget()
        self.roster = Roster()
        main = self.main = ttk.Frame(self.window)
        header = ttk.Frame(main, style="Header.TFrame", padding=(theme.PAD + 4, 8))
        header.pack(fill="x")
        ttk.Label(header, text="Mailslot", style="HeaderTitle.TLabel").pack(side="left")
        self.state_dot = ttk.Label(
            header,
            text="●",
            style="Header.TLabel",
            foreground=theme.ONLINE,
            font=theme.font(main, 2),
        )
        self.state_dot.pack(side="left", padx=(18, 6))
        # The buttons are packed before the status text, so a long status is clipped
        # instead of pushing them out of the window.
        self.signout_button = ttk.Button(
            header, text="Sign out", style="Header.TButton", command=self.sign_out
        )
        self.signout_button.pack(side="right")
        self.status = ttk.Label(header, text="", style="Header.TLabel")
        self.status.pack(side="left", fill="x", expand=True)
        self.reconnect_button = ttk.Button(
            header, text="Reconnect now", style="Header.TButton", command=self._reconnect_now
        )

        panes = ttk.Panedwindow(main, orient="horizontal")
        panes.pack(fill="both", expand=True)
        self.users_pane = UsersPane(panes, self.roster, self._pick)
        self.users_pane.me = self.user
        right = ttk.Frame(panes, padding=(theme.PAD // 2, theme.PAD, theme.PAD, theme.PAD))
        panes.add(self.users_pane, weight=1)
        panes.add(right, weight=4)
        self.notebook = ttk.Notebook(right)
        self.notebook.pack(fill="both", expand=True)
        self.compose = ComposeView(self.notebook, self.roster, self._send)
        self.inbox = InboxView(self.notebook, self.check)
        self.notebook.add(self.compose, text="  Compose  ", underline=2)
        self.notebook.add(self.inbox, text="  Inbox  ", underline=2)
        self.compose.set_me(self.user)
        main.pack(fill="both", expand=True)
        self.window.after_idle(lambda: panes.sashpos(0, 250))  # type: ignore[no-untyped-call]
        self.window.after_idle(self.compose.to_entry.focus_set)

    def _show_tab(self, index: int) -> None:
        if self.main is not None:
            self.notebook.select(index)  # type: ignore[no-untyped-call]

    def _pick(self, name: str) -> None:
        self.notebook.select(self.compose)  # type: ignore[no-untyped-call]
        self.compose.pick(name)

    def _attach(self, session: Session) -> None:
        """Make ``session`` the live connection and show it."""
        self.session = session
        self.state = "online"
        self._attempt = 0
        self.roster.replace((u.name, u.online) for u in session.users)
        self.users_pane.render()
        self.compose.render()
        self.compose.set_limits(session.info.max_text, session.info.max_recipients)
        self.compose.set_connected(True)
        self.inbox.set_enabled(True)
        self.inbox.set_waiting(session.login.waiting)
        self._update_badge()
        self.pump.drain(session.sc.events, self._on_events)
        lock = "  ·  TLS" if self.ssl_context is not None else ""
        self._set_status(f"Connected to {self.address} as {self.user}{lock}", theme.ONLINE)
        self.reconnect_button.pack_forget()
        self._schedule_ping()

    def _set_status(self, text: str, color: str) -> None:
        self.status.configure(text=text)
        self.state_dot.configure(foreground=color)

    @property
    def status_text(self) -> str:
        return str(self.status.cget("text")) if self.main is not None else ""

    def _update_badge(self) -> None:
        if self.main is None:
            return
        n = self.inbox.waiting
        self.notebook.tab(
            self.inbox,  # type: ignore[no-untyped-call]
            text=f"  Inbox ({n})  " if n else "  Inbox  ",
        )
        self.window.title(f"({n}) Mailslot — {self.user}" if n else f"Mailslot — {self.user}")

    # ===== events =============================================================================
    def _on_events(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, MailWaiting):
                self.inbox.set_waiting(ev.waiting)
            elif isinstance(ev, UserOnline):
                self.roster.set_online(ev.name, True)
            elif isinstance(ev, UserOffline):
                self.roster.set_online(ev.name, False)
            elif isinstance(ev, UserNew):
                self.roster.add(ev.name)
            elif isinstance(ev, Disconnected):
                self._lost(ev.reason)
                return
        self._update_badge()

    def _schedule_ping(self) -> None:
        if self._ping_job is not None:
            self.window.after_cancel(self._ping_job)
        self._ping_job = self.window.after(PING_EVERY_MS, self._ping)

    def _ping(self) -> None:
        self._ping_job = None
        if self.state == "online" and self.session is not None:
            session = self.session
            self.pump.watch(
                session.sc.submit(session.sc.client.ping),
                lambda f: self._request_failed(f, session),
            )
            self._schedule_ping()

    def _request_failed(self, fut: Future[Any], session: Session) -> None:
        exc = fut.exception()
        lost = exc is not None and getattr(exc, "code", "") == "connection_lost"
        if lost and self.session is session:
            self._lost(str(exc))

    # ===== connection loss and reconnect =====
    def _lost(self, reason: str) -> None:
        if self.state != "online" or self.session is None:
            return
        old = self.session
        self.session = None
        self.pump.forget_queue(old.sc.events)
        self.pump.run(old.sc.close, done=lambda f: None)
        self.state = "reconnecting"
        self.compose.set_connected(False)
        self.inbox.set_enabled(False)
        for p in self.roster.people():
            self.roster.set_online(p.name, False)
        log.info("connection to %s lost: %s", self.address, reason)
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        delay = BACKOFF[min(self._attempt, len(BACKOFF) - 1)]
        self._attempt += 1
        # Kept short so it fits an 800-pixel window beside its buttons.
        self._set_status(f"Disconnected. Reconnecting in {delay:.0f} s…", theme.WARNING)
        self.reconnect_button.pack(side="right", padx=(0, 8), before=self.status)
        self._retry_job = self.window.after(int(delay * 1000), self._reconnect)

    def _reconnect_now(self) -> None:
        if self.state == "reconnecting" and self._retry_job is not None:
            self.window.after_cancel(self._retry_job)
            self._reconnect()

    def _reconnect(self) -> None:
        self._retry_job = None
        if self.state != "reconnecting":
            return
        self._set_status(f"Reconnecting to {self.address}…", theme.WARNING)
        self.pump.run(
            open_session,
            self.host,
            self.port,
            self.user,
            self._password,
            self.ssl_context,
            self._seen,
            self._probe,
            done=self._reconnect_done,
        )

    def _reconnect_done(self, fut: Future[Session]) -> None:
        if self.state != "reconnecting":
            if fut.exception() is None:
                self.pump.run(fut.result().sc.close, done=lambda f: None)
            return
        exc = fut.exception()
        if exc is None:
            self._attach(fut.result())
            self.compose.validate()
            return
        code = getattr(exc, "code", "")
        if isinstance(exc, NeedPassword) or code in {
            "wrong_password",
            "invalid_username",
            "password_required",
        }:
            sentence, field = login_sentence(exc, self.user, self.address)
            self._back_to_login()
            self.login.show_error(sentence, field)  # type: ignore[arg-type]
            return
        log.info("reconnecting to %s failed: %s", self.address, exc or code)
        self._schedule_reconnect()

    # ===== archive and inbox ================================================================
    def _archive_loaded(self, fut: Future[tuple[Archive, list[ArchivedMessage]]]) -> None:
        exc = fut.exception()
        if self.main is None or self.state in ("login", "closed"):
            if exc is None:
                threading.Thread(target=fut.result()[0].close, daemon=True).start()
            return
        if exc is not None:
            self.inbox.say(f"The local archive could not be opened: {exc}.", "Error.TLabel")
            return
        archive, messages = fut.result()
        if self.archive is None:
            self.archive = archive
        else:
            threading.Thread(target=archive.close, daemon=True).start()
        self.inbox.load_archive(messages)

    def check(self) -> None:
        """Fetch → save to the local archive → acknowledge (B1, B5) → show."""
        if self.state != "online" or self.session is None or self.main is None:
            return
        if "disabled" in self.inbox.check_button.state():
            return
        self.notebook.select(self.inbox)  # type: ignore[no-untyped-call]
        session = self.session
        self.inbox.set_busy(True)
        self.pump.watch(
            session.sc.submit(session.sc.client.fetch), lambda f: self._fetched(f, session)
        )

    def _fetched(self, fut: Future[list[Message]], session: Session) -> None:
        exc = fut.exception()
        if exc is not None:
            self.inbox.set_busy(False)
            self.inbox.say(f"Could not check messages: {send_sentence(exc)}", "Error.TLabel")
            self._request_failed(fut, session)
            return
        messages = fut.result()
        self.inbox.set_waiting(0)
        self._update_badge()
        if not messages:
            self.inbox.set_busy(False)
            self.inbox.show_new([])
            return
        if self.archive is None:
            # Still opening: open it on the worker now (two handles to one file are fine).
            self.pump.run(
                open_archive,
                self.address,
                self.user,
                self.data_dir,
                done=lambda f: self._archive_ready(f, messages, session),
            )
            return
        self.pump.run(self.archive.add, messages, done=lambda f: self._stored(f, messages, session))

    def _archive_ready(
        self,
        fut: Future[tuple[Archive, list[ArchivedMessage]]],
        messages: list[Message],
        session: Session,
    ) -> None:
        if fut.exception() is not None:
            self.inbox.set_busy(False)
            self.inbox.say(
                f"The local archive could not be opened ({fut.exception()}); "
                "your messages stay on the server.",
                "Error.TLabel",
            )
            return
        if self.archive is None:
            self.archive = fut.result()[0]
        self.pump.run(self.archive.add, messages, done=lambda f: self._stored(f, messages, session))

    def _stored(self, fut: Future[list[int]], messages: list[Message], session: Session) -> None:
        self.inbox.set_busy(False)
        exc = fut.exception()
        if exc is not None:
            # Not archived, so not acknowledged: the server keeps them.
            self.inbox.say(
                f"Messages were not saved locally ({exc}); they stay on the server.", "Error.TLabel"
            )
            return
        new = set(fut.result())
        ids = [m.id for m in messages]
        self.pump.watch(
            session.sc.submit(session.sc.client.ack, ids),
            lambda f: self._request_failed(f, session),
        )
        fresh = [m for m in messages if m.id in new]
        if fresh:
            self.inbox.show_new(fresh)
        else:
            self.inbox.show_new([])

    # ===== sending =============================================================================
    def _send(self, text: str, names: list[str], mode: Mode) -> None:
        session = self.session
        if session is None:
            self.compose.send_failed("not connected.")
            return
        fut = session.sc.submit(
            session.sc.client.send, text, to=names, everyone=mode == "all", many=mode == "many"
        )
        self.pump.watch(fut, lambda f: self._sent(f, names, mode, session))

    def _sent(
        self, fut: Future[SendResult], names: list[str], mode: Mode, session: Session
    ) -> None:
        exc = fut.exception()
        if exc is not None:
            self.compose.send_failed(send_sentence(exc))
            self._request_failed(fut, session)
        else:
            result = fut.result()
            self.compose.send_succeeded(result.recipients, names, mode == "all", result.at)
        self.refresh_users()

    def refresh_users(self) -> None:
        """Fetch a fresh user list (S10)."""
        session = self.session
        if session is None:
            return

        def done(f: Future[list[UserInfo]]) -> None:
            if f.exception() is None and self.session is session:
                self.roster.replace((u.name, u.online) for u in f.result())

        self.pump.watch(session.sc.submit(session.sc.client.users), done)

    # ===== leaving =============================================================================
    def _back_to_login(self) -> None:
        self._drop_session()
        if self.main is not None:
            self.main.destroy()
            self.main = None
        self.state = "login"
        self.window.title("Mailslot")
        self.login.set_busy(None)
        self.login.pack(fill="both", expand=True)

    def _drop_session(self) -> None:
        for job in (self._retry_job, self._ping_job):
            if job is not None:
                with contextlib.suppress(tk.TclError):
                    self.window.after_cancel(job)
        self._retry_job = self._ping_job = None
        if self.session is not None:
            sc = self.session.sc
            self.pump.forget_queue(sc.events)
            threading.Thread(target=sc.close, daemon=True).start()
            self.session = None
        if self.archive is not None:
            threading.Thread(target=self.archive.close, daemon=True).start()
            self.archive = None
        self._seen = set()

    def sign_out(self) -> None:
        self._back_to_login()
        self.login.show_info(f"Signed out of {self.address}.")

    def close(self) -> None:
        """Close the window; the connection is closed in the background."""
        self._drop_session()
        self.state = "closed"
        self.pump.stop()
        with contextlib.suppress(tk.TclError):
            self.window.destroy()


def run_client(server: str | None, user: str | None, ssl_context: ssl.SSLContext | None) -> int:
    """Entry point of ``mailslot client``: blocks in the Tk main loop; returns the exit code."""
    root = tk.Tk(className="Mailslot")
    ClientApp(
        root, server=server, user=user, ssl_context=ssl_context, autoconnect=bool(server and user)
    )
    root.mainloop()
    return 0
