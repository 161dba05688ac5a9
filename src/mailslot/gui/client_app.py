"""The Mailslot desktop client (S1–S13, B4, B5): login, users, compose, inbox.

All network work goes through :class:`mailslot.client.SyncClient` futures and all
disk work through worker threads; the Tk thread only polls (see :mod:`tkasync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import ssl
import threading
import tkinter as tk
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk
from typing import Any, Literal

from mailslot.client import (
    Client,
    ConnectError,
    ConnectionLost,
    Disconnected,
    Event,
    LoginResult,
    MailWaiting,
    Message,
    PasswordRequired,
    SendResult,
    ServerBusy,
    ServerInfo,
    SyncClient,
    Unavailable,
    UserInfo,
    UsernameInUse,
    UserNew,
    UserOffline,
    UserOnline,
    WrongPassword,
)
from mailslot.client.address import format_address, parse_addresses
from mailslot.gui import theme
from mailslot.gui.archive import Archive, ArchivedMessage, archive_path
from mailslot.gui.compose import ComposeView, Mode
from mailslot.gui.errors import LOGIN_REFUSALS, NoServer, login_sentence, send_sentence
from mailslot.gui.history import SearchView, SentView
from mailslot.gui.inbox import InboxView
from mailslot.gui.login_view import LoginView, PasswordDialog
from mailslot.gui.roster import Roster, name_problem
from mailslot.gui.settings import ClientSettings
from mailslot.gui.tkasync import Pump
from mailslot.gui.users_pane import UsersPane
from mailslot.protocol.names import name_key

log = logging.getLogger(__name__)

State = Literal["login", "connecting", "online", "reconnecting", "closed"]
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PING_EVERY_MS = 30_000
PING_TIMEOUT = 10.0
"""Seconds a ping may go unanswered before the server counts as lost: a server whose
machine vanished sends no reset, and TCP alone would take many minutes to give up."""
ARCHIVE_SHOWN = 5_000
SEARCH_SHOWN = 500
LOGIN_SIZE = "560x480"
MAIN_SIZE = "1000x700"
MIN_SIZE = (720, 480)
NODE_TROUBLE = (ConnectError, ConnectionLost, ServerBusy, Unavailable)
"""What one server of the list may answer while another can serve: try the next one."""


class NeedPassword(Exception):
    """The name needs a password and none was typed."""


class NewName(Exception):
    """The name was never used: its password is being chosen, so it is asked for twice."""


class ArchiveError(Exception):
    """The local archive could not be opened or written; the message says why."""


@dataclass
class Session:
    sc: SyncClient
    info: ServerInfo
    login: LoginResult
    users: list[UserInfo]
    server: tuple[str, int]
    """The server of the list that answered."""


def open_session(
    servers: list[tuple[str, int]],
    user: str,
    password: str,
    confirmed: bool,
    ssl_context: ssl.SSLContext | None,
    seen: set[int],
    probe: dict[str, str],
) -> Session:
    """Worker thread: a session on the first server of ``servers`` that serves, in order.

    A server that cannot be reached, is full or cannot serve right now (its database is
    away) is passed over for the next; a refusal of the name or password is not, since every
    server of one service would give the same. With several servers and none serving,
    NoServer names each failure; with one, its own error is raised.
    """
    failures: list[tuple[str, BaseException]] = []
    for host, port in servers:
        try:
            return _open_on(host, port, user, password, confirmed, ssl_context, seen, probe)
        except NODE_TROUBLE as error:
            log.info("server %s did not serve: %s", format_address(host, port), error)
            failures.append((format_address(host, port), error))
    if len(failures) == 1:
        raise failures[0][1]
    raise NoServer(failures)


def _open_on(
    host: str,
    port: int,
    user: str,
    password: str,
    confirmed: bool,
    ssl_context: ssl.SSLContext | None,
    seen: set[int],
    probe: dict[str, str],
) -> Session:
    """Worker thread: connect, log in, fetch the user list; the socket is closed on failure.

    A module-level function on purpose: worker threads must hold no reference to Tk objects.
    ``probe["auth"]`` receives the server's auth mode even when the login fails. Unless the
    password was ``confirmed`` (typed twice), the first attempt goes without it, so that a
    new name's password is never set from a single, possibly mistyped, entry.
    """
    sc = SyncClient.connect(host, port, ssl_context=ssl_context, timeout=10.0, seen_ids=seen)
    try:
        info = sc.server_info
        probe["auth"] = info.auth
        if confirmed and password:
            result = sc.login(user, password)
        else:
            try:
                result = sc.login(user, None)
            except PasswordRequired as refusal:
                if refusal.extra.get("new"):
                    raise NewName() from None
                if not password:
                    raise NeedPassword() from None
                result = sc.login(user, password)
        return Session(sc, info, result, sc.users(), (host, port))
    except BaseException:
        sc.close()
        raise


class Mailbox:
    """One user's archive on this computer, opened by the first worker thread that needs it.

    Holds no Tk objects: it is used from worker threads only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._archive: Archive | None = None
        self._lock = threading.Lock()

    def archive(self) -> Archive:
        with self._lock:
            if self._archive is None:
                try:
                    self._archive = Archive(self.path)
                except (OSError, sqlite3.Error) as error:
                    raise ArchiveError(str(error)) from None
            return self._archive

    def collect(self, sc: SyncClient) -> list[Message]:
        """Fetch → archive → acknowledge (B1, B5); the messages new to the archive.

        A message is acknowledged only once it is on this computer's disk. Redelivered
        duplicates are acknowledged with the rest, and shown once.
        """
        messages = sc.fetch()
        if messages:
            try:
                new = set(self.archive().add(messages))
            except sqlite3.Error as error:
                raise ArchiveError(str(error)) from None
        else:
            new = set()
        with contextlib.suppress(ConnectionLost):  # archived: the next check acknowledges them
            sc.ack(m.id for m in messages)
        return [m for m in messages if m.id in new]

    def keep_sent(self, message: ArchivedMessage) -> None:
        self.archive().add_sent(message)

    def close(self) -> None:
        with self._lock:
            if self._archive is not None:
                self._archive.close()
                self._archive = None


class ClientApp:
    """One client window. ``window`` is the Tk root or a Toplevel (the demo opens three and
    places them itself: ``place=False``)."""

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
        place: bool = True,
    ) -> None:
        self.window = window
        self.ssl_context = ssl_context
        self.data_dir = data_dir
        self.remember = remember
        self.place = place
        self.settings = ClientSettings.load() if remember else ClientSettings()
        self.state: State = "login"
        self.session: Session | None = None
        self.mailbox: Mailbox | None = None
        self.roster = Roster()
        self.servers: list[tuple[str, int]] = []
        self.node: tuple[str, int] | None = None  # the server of the list last connected to
        self.user = ""
        self._password = ""
        self._seen: set[int] = set()
        self._probe: dict[str, str] = {}
        self._attempt = 0
        self._retry_job: str | None = None
        self._ping_job: str | None = None
        self._check_again = False
        self.main: ttk.Frame | None = None

        theme.apply(window)
        window.title("Mailslot")
        if place:
            window.geometry(LOGIN_SIZE)
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
        for tab in range(4):
            window.bind(f"<Control-Key-{tab + 1}>", self._tab_shortcut(tab))
        window.bind("<Control-f>", lambda _e: self._show_tab(3))
        if autoconnect and self.login.user_var.get():
            window.after_idle(self.login.submit)

    # ===== login ==============================================================================
    def _connect(self, address: str, user: str, password: str, confirmed: bool) -> None:
        if self.state not in ("login",):
            return
        try:
            servers = parse_addresses(address)
        except ValueError as exc:
            self.login.show_error(str(exc), "server")
            return
        problem = name_problem(user)
        if problem is not None:
            self.login.show_error(problem, "user")
            return
        self.servers, self.node, self.user, self._password = servers, None, user, password
        self.state = "connecting"
        self.login.set_busy(f"Connecting to {self.address} as “{user}”…")
        self.pump.run(
            open_session,
            servers,
            user,
            password,
            confirmed,
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
        """The servers as remembered: one address, or several separated by commas."""
        return ", ".join(format_address(*server) for server in self.servers)

    @property
    def home(self) -> str:
        """The first server of the list: names the archive and per-user settings whichever
        server answers, as the CLI does, so a failover keeps one history."""
        return format_address(*self.servers[0])

    @property
    def connected_to(self) -> str:
        return format_address(*self.node) if self.node is not None else ""

    def _login_done(self, fut: Future[Session]) -> None:
        if self.state != "connecting":
            if fut.exception() is None:
                threading.Thread(target=fut.result().sc.close, daemon=True).start()
            return
        self._remember_auth()
        exc = fut.exception()
        if exc is not None:
            self.state = "login"
            if isinstance(exc, NewName):
                self.login.ask_new_password(self.user)
                return
            if isinstance(exc, NeedPassword):
                self.login.ask_password(self.user)
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
        self.mailbox = Mailbox(archive_path(self.home, self.user, self.data_dir))
        self._build_main(session.info)
        self._attach(session)
        self.pump.run(_load_history, self.mailbox, done=self._history_loaded)

    @property
    def _auto_key(self) -> str:
        return f"{name_key(self.user)}@{self.home}"

    @property
    def fetch_on_arrival(self) -> bool:
        return self._auto_key in self.settings.fetch_on_arrival

    def set_fetch_on_arrival(self, on: bool) -> None:
        """Remembered per user and server; off by default, so checking stays a click (S11)."""
        keys = self.settings.fetch_on_arrival
        if on:
            keys.add(self._auto_key)
        else:
            keys.discard(self._auto_key)
        if self.remember:
            self.pump.run(self.settings.save, done=lambda f: None)
        if self.main is not None:
            self.inbox.set_auto(on)
            if on and self.inbox.waiting:
                self.check(show=False)

    # ===== main view ==========================================================================
    def _build_main(self, info: ServerInfo) -> None:
        self.login.set_busy(None)
        self.login.leave_new_name()
        self.login.pack_forget()
        if self.place:
            self.window.geometry(MAIN_SIZE)
        self.window.minsize(*MIN_SIZE)
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
        self.password_button = ttk.Button(
            header, text="Password…", style="Header.TButton", command=self.open_password_dialog
        )
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
        self.compose = ComposeView(
            self.notebook, self.roster, self._send, info.max_text, info.max_recipients
        )
        self.inbox = InboxView(self.notebook, self.check, self.reply, self.set_fetch_on_arrival)
        self.sent_view = SentView(self.notebook, self.reply)
        self.search_view = SearchView(self.notebook, self.search, self.reply)
        self.notebook.add(self.compose, text="  Compose  ", underline=2)
        self.notebook.add(self.inbox, text="  Inbox  ", underline=2)
        self.notebook.add(self.sent_view, text="  Sent  ", underline=2)
        self.notebook.add(self.search_view, text="  Search  ", underline=2)
        self.inbox.set_auto(self.fetch_on_arrival)
        self.compose.set_me(self.user)
        main.pack(fill="both", expand=True)
        self.window.after_idle(lambda: panes.sashpos(0, 250))  # type: ignore[no-untyped-call]
        self.window.after_idle(self.compose.to_entry.focus_set)

    def _tab_shortcut(self, index: int) -> Callable[[object], None]:
        return lambda _event: self._show_tab(index)

    def _show_tab(self, index: int) -> None:
        if self.main is not None:
            self.notebook.select(index)  # type: ignore[no-untyped-call]
            if index == 3:
                self.search_view.entry.focus_set()

    def _pick(self, name: str) -> None:
        self.notebook.select(self.compose)  # type: ignore[no-untyped-call]
        self.compose.pick(name)

    def reply(self, message: ArchivedMessage, to_all: bool) -> None:
        """Write to the sender of ``message`` or, ``to_all``, to everyone it went to but me."""
        if self.main is None:
            return
        self.notebook.select(self.compose)  # type: ignore[no-untyped-call]
        me = name_key(self.user)
        if to_all and message.everyone:
            self.compose.address([], everyone=True)
            return
        names = [message.sender, *message.to] if to_all else [message.sender]
        others = [n for n in dict.fromkeys(names) if name_key(n) != me]
        self.compose.address(others)

    def _attach(self, session: Session) -> None:
        """Make ``session`` the live connection and show it."""
        self.session = session
        self.node = session.server
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
        self._set_status(self._connected_sentence(), theme.ONLINE)
        self.reconnect_button.pack_forget()
        if session.info.auth == "password":
            self.password_button.pack(side="right", padx=(0, 8), after=self.signout_button)
        self._schedule_ping()
        if self.fetch_on_arrival and session.login.waiting:
            self.check(show=False)

    def _connected_sentence(self) -> str:
        text = f"Connected to {self.connected_to} as {self.user}"
        if len(self.servers) > 1 and self.node in self.servers:
            text += f"  ·  server {self.servers.index(self.node) + 1} of {len(self.servers)}"
        return text + ("  ·  TLS" if self.ssl_context is not None else "")

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
        if self.fetch_on_arrival and self.inbox.waiting:
            if self.inbox.busy:  # the check under way may miss it: check again after
                self._check_again = True
            else:
                self.check(show=False)

    def _schedule_ping(self) -> None:
        if self._ping_job is not None:
            self.window.after_cancel(self._ping_job)
        self._ping_job = self.window.after(PING_EVERY_MS, self._ping)

    def _ping(self) -> None:
        self._ping_job = None
        if self.state == "online" and self.session is not None:
            session = self.session
            self.pump.watch(
                session.sc.submit(_ping_within, session.sc.client, PING_TIMEOUT),
                lambda f: self._request_failed(f, session),
            )
            self._schedule_ping()

    def _request_failed(self, fut: Future[Any], session: Session) -> None:
        if isinstance(fut.exception(), ConnectionLost) and self.session is session:
            self._lost(str(fut.exception()))

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
        log.info("connection to %s lost: %s", self.connected_to, reason)
        self._schedule_reconnect("Disconnected")

    def _schedule_reconnect(self, what: str) -> None:
        delay = BACKOFF[min(self._attempt, len(BACKOFF) - 1)]
        self._attempt += 1
        # Kept short so it fits an 800-pixel window beside its buttons.
        self._set_status(f"{what}. Reconnecting in {delay:.0f} s…", theme.WARNING)
        # A password cannot be changed offline: its button makes room for the reason.
        self.password_button.pack_forget()
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
        trying = self.address if len(self.servers) == 1 else f"{len(self.servers)} servers"
        self._set_status(f"Reconnecting to {trying}…", theme.WARNING)
        # The server just lost is tried last: across a network a dead host costs a time-out.
        others = [server for server in self.servers if server != self.node]
        self.pump.run(
            open_session,
            others + [server for server in self.servers if server == self.node],
            self.user,
            self._password,
            True,  # the name is known to the server by now
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
        if isinstance(exc, (NeedPassword, NewName, *LOGIN_REFUSALS)):
            sentence, field = login_sentence(exc, self.user, self.address)
            self._back_to_login()
            self.login.show_error(sentence, field)  # type: ignore[arg-type]
            return
        log.info("reconnecting to %s failed: %s", self.address, exc)
        if isinstance(exc, UsernameInUse):
            # In a cluster, the name stays claimed until the server that was lost is known
            # to be gone (at once on one host, up to ~30 s across a network).
            self._schedule_reconnect("Name still in use")
        elif isinstance(exc, NoServer):
            self._schedule_reconnect("No server answered")
        else:
            self._schedule_reconnect("Still disconnected")

    # ===== archive, inbox, sent, search ======================================================
    def _history_loaded(
        self, fut: Future[tuple[list[ArchivedMessage], list[ArchivedMessage]]]
    ) -> None:
        if self.main is None or self.state in ("login", "closed"):
            return
        exc = fut.exception()
        if exc is not None:
            self.inbox.say(f"The local archive could not be opened: {exc}.", "Error.TLabel")
            return
        received, sent = fut.result()
        self.inbox.load_archive(received)
        self.sent_view.load(sent)

    def check(self, *, show: bool = True) -> None:
        """Fetch → archive → acknowledge (B1, B5) → show, all in one worker call.

        ``show`` brings the inbox forward (a click does; mail fetched as it arrives does not).
        """
        session, mailbox = self.session, self.mailbox
        if self.state != "online" or session is None or mailbox is None or self.main is None:
            return
        if self.inbox.busy:
            return
        if show:
            self.notebook.select(self.inbox)  # type: ignore[no-untyped-call]
        self.inbox.set_busy(True)
        self.pump.run(mailbox.collect, session.sc, done=lambda f: self._collected(f, session))

    def _collected(self, fut: Future[list[Message]], session: Session) -> None:
        if self.main is None or self.state == "closed":
            return
        self.inbox.set_busy(False)
        exc = fut.exception()
        if isinstance(exc, ArchiveError):
            self.inbox.say(
                f"Messages were not saved on this computer ({exc}); they stay on the server.",
                "Error.TLabel",
            )
            return
        if exc is not None:
            self.inbox.say(f"Could not check messages: {send_sentence(exc)}", "Error.TLabel")
            self._request_failed(fut, session)
            return
        self.inbox.set_waiting(0)
        self._update_badge()
        self.inbox.show_new(fut.result())
        if self._check_again:
            self._check_again = False
            self.check(show=False)

    def search(self, words: str) -> None:
        mailbox = self.mailbox
        if mailbox is None:
            return

        def found(f: Future[list[ArchivedMessage]]) -> None:
            if self.main is None:
                return
            if f.exception() is not None:
                self.search_view.show_results(words, [])
            else:
                self.search_view.show_results(words, f.result())

        self.pump.run(lambda: mailbox.archive().search(words, SEARCH_SHOWN), done=found)

    # ===== sending =============================================================================
    def _send(self, text: str, names: list[str], mode: Mode) -> None:
        session = self.session
        if session is None:
            self.compose.send_failed("not connected.")
            return
        fut = session.sc.submit(
            session.sc.client.send, text, to=names, everyone=mode == "all", many=mode == "many"
        )
        self.pump.watch(fut, lambda f: self._sent(f, text, names, mode, session))

    def _sent(
        self, fut: Future[SendResult], text: str, names: list[str], mode: Mode, session: Session
    ) -> None:
        exc = fut.exception()
        if exc is not None:
            self.compose.send_failed(send_sentence(exc))
            self._request_failed(fut, session)
        else:
            result = fut.result()
            self.compose.send_succeeded(result.recipients, names, mode == "all", result.at)
            sent = ArchivedMessage(
                result.id, self.user, result.at, text, tuple(names), everyone=mode == "all"
            )
            self.sent_view.add(sent)
            if self.mailbox is not None:
                self.pump.run(self.mailbox.keep_sent, sent, done=lambda f: None)
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

    # ===== password ============================================================================
    def open_password_dialog(self) -> PasswordDialog | None:
        if self.session is None:
            return None
        return PasswordDialog(self.window, self.user, self._change_password)

    def _change_password(self, dialog: PasswordDialog, old: str, new: str) -> None:
        session = self.session
        if session is None:
            dialog.failed("Not connected. Try again once the connection is back.")
            return

        def done(f: Future[None]) -> None:
            exc = f.exception()
            if exc is None and self.main is not None:
                self._password = new
                self._set_status(f"Password changed. {self._connected_sentence()}", theme.ONLINE)
            if not dialog.winfo_exists():  # closed while the server was asked
                return
            if exc is None:
                dialog.destroy()
            elif isinstance(exc, WrongPassword):
                dialog.failed("The current password is wrong.")
            else:
                sentence = send_sentence(exc)
                dialog.failed(sentence[:1].upper() + sentence[1:])

        self.pump.watch(session.sc.submit(session.sc.client.change_password, old, new), done)

    # ===== leaving =============================================================================
    def _back_to_login(self) -> None:
        self._drop_session()
        if self.main is not None:
            self.main.destroy()
            self.main = None
        self.state = "login"
        self.window.title("Mailslot")
        if self.place:
            self.window.minsize(1, 1)
            self.window.geometry(LOGIN_SIZE)
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
        if self.mailbox is not None:
            threading.Thread(target=self.mailbox.close, daemon=True).start()
            self.mailbox = None
        self._seen = set()

    def sign_out(self) -> None:
        self._back_to_login()
        self._password = ""
        self.login.clear_passwords()
        self.login.show_info(f"Signed out of {self.address}.")

    def close(self) -> None:
        """Close the window; the connection is closed in the background."""
        self._drop_session()
        self.state = "closed"
        self.pump.stop()
        with contextlib.suppress(tk.TclError):
            self.window.destroy()


async def _ping_within(client: Client, seconds: float) -> None:
    try:
        await asyncio.wait_for(client.ping(), seconds)
    except TimeoutError:
        raise ConnectionLost(f"no answer to a ping within {seconds:g} s") from None


def _load_history(mailbox: Mailbox) -> tuple[list[ArchivedMessage], list[ArchivedMessage]]:
    """Worker thread: the received and the sent messages kept on this computer."""
    archive = mailbox.archive()
    return archive.load(ARCHIVE_SHOWN), archive.load_sent(ARCHIVE_SHOWN)


def run_client(server: str | None, user: str | None, ssl_context: ssl.SSLContext | None) -> int:
    """Entry point of ``mailslot client``: blocks in the Tk main loop; returns the exit code."""
    root = tk.Tk(className="Mailslot")
    ClientApp(
        root, server=server, user=user, ssl_context=ssl_context, autoconnect=bool(server and user)
    )
    root.mainloop()
    return 0
