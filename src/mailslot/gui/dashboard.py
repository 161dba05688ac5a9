"""The server dashboard (S15–S17, B7): header with counters, the users table, the event log.

The server runs in a :class:`~mailslot.server.ServerThread`; the dashboard drains the
server's event queue in batches and refreshes the table from ``snapshot()`` (taken on a
worker thread) a few times a second at most, so it stays responsive under floods.
"""

from __future__ import annotations

import contextlib
import sys
import time
import tkinter as tk
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from tkinter import messagebox, ttk
from typing import Any

from mailslot.gui import theme
from mailslot.gui.roster import filter_key
from mailslot.gui.tkasync import Pump
from mailslot.gui.widgets import ScrolledTree, dot_image, refill_tree, scroll_text
from mailslot.protocol.names import name_key
from mailslot.server import ServerConfig, ServerEvent, ServerSnapshot, ServerThread, UserRow
from mailslot.server.config import startup_failure

SNAPSHOT_MIN_INTERVAL = 0.4  # seconds between snapshots while events flow
SNAPSHOT_IDLE_INTERVAL = 5.0  # refresh "last seen" and counters even when nothing happens
LOG_MAX_LINES = 5000
EVENT_BATCH = 2000

COLUMNS = ("name", "status", "since", "waiting")
HEADINGS = {
    "name": "Username",
    "status": "Status",
    "since": "Connected since / last seen",
    "waiting": "Waiting",
}

REASONS = {
    "username_in_use": "name already in use",
    "wrong_password": "wrong password",
    "invalid_username": "invalid name",
    "password_required": "no password given",
    "rate_limited": "too many attempts",
    "server_busy": "server full",
}


def _local(at: datetime | None, with_date: bool = True) -> str:
    if at is None:
        return "—"
    local = at.astimezone()
    if local.date() == datetime.now().astimezone().date() or not with_date:
        return local.strftime("%H:%M:%S")
    return local.strftime("%d %b %Y %H:%M")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _log_pieces(kind: str, sentence: str, at: datetime) -> list[Any]:
    """One event-log line as Text.insert arguments: time, coloured kind, sentence."""
    return [
        _local(at, with_date=False) + "\t",
        ("time",),
        kind + "\t",
        ("k-" + kind,),
        sentence + "\n",
        (),
    ]


def _pane_bar(pane: ttk.Frame, title: str) -> tuple[ttk.Frame, ttk.Label]:
    """A pane's top row: its title, then a muted summary; returns (row, summary label)."""
    bar = ttk.Frame(pane)
    bar.pack(fill="x", pady=(0, 6))
    ttk.Label(bar, text=title, style="Section.TLabel").pack(side="left")
    summary = ttk.Label(bar, text="", style="Muted.TLabel")
    summary.pack(side="left", padx=(10, 0))
    return bar, summary


def describe(ev: ServerEvent) -> tuple[str, str]:
    """(short kind label, sentence) for the event log; never any message text (S17)."""
    who = ev.user or ev.peer or "?"
    match ev.kind:
        case "listening":
            return "server", f"Listening on {ev.detail}"
        case "connected":
            return "connect", f"Connection from {ev.peer}"
        case "login":
            return "login", f"{ev.user} logged in from {ev.peer}"
        case "rejected":
            reason = REASONS.get(ev.detail, ev.detail.replace("_", " "))
            target = f"“{ev.user}”" if ev.user else "connection"
            return "rejected", f"Rejected {target} from {ev.peer or '?'}: {reason}"
        case "disconnected":
            detail = f" ({ev.detail})" if ev.detail else ""
            if ev.user:
                return "logout", f"{ev.user} disconnected{detail}"
            return "logout", f"Connection {ev.peer} closed{detail}"
        case "user_created":
            return "new user", f"New user {ev.user}"
        case "enqueued":
            return "send", f"{who} sent a message to {_plural(ev.count, 'recipient')}"
        case "delivered":
            return "delivered", f"{who} picked up {_plural(ev.count, 'message')}"
        case "stopped":
            return "server", "Server stopped"
    return ev.kind, f"{who} {ev.detail}".strip()


class Dashboard:
    def __init__(
        self,
        window: tk.Tk | tk.Toplevel,
        server: ServerThread,
        on_stopped: Callable[[], None] | None = None,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.window = window
        self.server = server
        self.on_stopped = on_stopped
        self.confirm = confirm or (
            lambda title, text: bool(
                messagebox.askokcancel(title, text, icon="warning", parent=self.window)
            )
        )
        self.snapshot: ServerSnapshot | None = None
        self.stopping = False
        self._events = server.server.events.subscribe()
        self._dirty = True
        self._snap_inflight = False
        self._last_snap = 0.0
        self._sort_col = "name"
        self._sort_reverse = False
        self._shown: list[str] = []
        self._row_values: dict[str, tuple[Any, ...]] = {}
        self.events_seen = 0

        theme.apply(window)
        window.title("Mailslot server")
        window.geometry("1100x720")
        window.minsize(720, 480)
        window.protocol("WM_DELETE_WINDOW", self.request_close)
        self._img_on = dot_image(window, theme.ONLINE)
        self._img_off = dot_image(window, theme.OFFLINE, hollow=True)
        self._build()
        self.pump = Pump(window, interval_ms=150, name="mailslot-dashboard")
        self.pump.drain(self._events, self._on_events, batch=EVENT_BATCH)
        self.pump.tick(self._tick)
        self._log_line(
            "server",
            f"Dashboard attached to the server on {server.server.address}",
            datetime.now(UTC),
        )

    # ===== layout ==============================================================================
    def _build(self) -> None:
        w = self.window
        header = ttk.Frame(w, style="Header.TFrame", padding=(theme.PAD + 6, theme.PAD))
        header.pack(fill="x")
        left = ttk.Frame(header, style="Header.TFrame")
        left.pack(side="left", fill="y")
        ttk.Label(left, text="Mailslot server", style="HeaderTitle.TLabel").pack(anchor="w")
        self.address_label = ttk.Label(left, text="", style="Header.TLabel")
        self.address_label.pack(anchor="w", pady=(4, 0))
        self.mode_label = ttk.Label(left, text="", style="HeaderMuted.TLabel")
        self.mode_label.pack(anchor="w", pady=(2, 0))
        self.counters: dict[str, ttk.Label] = {}
        tiles = ttk.Frame(header, style="Header.TFrame")
        tiles.pack(side="right")
        for key, label in (
            ("online", "online now"),
            ("known", "users known"),
            ("waiting", "messages waiting"),
            ("delivered", "delivered"),
        ):
            tile = ttk.Frame(tiles, style="Header.TFrame", padding=(18, 0, 0, 0))
            tile.pack(side="left")
            value = ttk.Label(tile, text="–", style="HeaderValue.TLabel", anchor="e")
            value.pack(anchor="e")
            ttk.Label(tile, text=label, style="HeaderMuted.TLabel").pack(anchor="e")
            self.counters[key] = value

        panes = ttk.Panedwindow(w, orient="vertical")
        panes.pack(fill="both", expand=True, padx=theme.PAD, pady=(theme.PAD, theme.PAD))
        users = ttk.Frame(panes, padding=(2, 0, 2, 6))
        bar, self.table_summary = _pane_bar(users, "Users")
        self.filter_var = tk.StringVar(w)
        self.filter_entry = ttk.Entry(bar, textvariable=self.filter_var, width=28)
        self.filter_entry.pack(side="right")
        ttk.Label(bar, text="Filter").pack(side="right", padx=(0, 8))
        self.filter_var.trace_add("write", lambda *_: self._render_table())

        self.table = ScrolledTree(
            users, columns=COLUMNS, show="tree headings", selectmode="browse", height=12
        )
        tree = self.tree = self.table.tree
        tree.column("#0", width=34, minwidth=34, stretch=False, anchor="center")
        tree.heading("#0", text="")
        widths = {"name": 260, "status": 110, "since": 260, "waiting": 90}
        for col in COLUMNS:
            tree.column(
                col,
                width=widths[col],
                minwidth=60,
                stretch=col in ("name", "since"),
                anchor="e" if col == "waiting" else "w",
            )
            tree.heading(
                col,
                text=HEADINGS[col],
                command=lambda c=col: self.sort_by(c),
                anchor="e" if col == "waiting" else "w",
            )
        tree.tag_configure("offline", foreground=theme.MUTED)
        self.table.pack(fill="both", expand=True)
        panes.add(users, weight=3)

        logf = ttk.Frame(panes, padding=(2, 8, 2, 0))
        lbar, self.log_summary = _pane_bar(logf, "Events")
        self.follow_var = tk.BooleanVar(w, value=True)
        ttk.Checkbutton(lbar, text="Follow new events", variable=self.follow_var).pack(side="right")
        box = ttk.Frame(logf)
        box.pack(fill="both", expand=True)
        self.log = tk.Text(
            box,
            height=10,
            wrap="none",
            relief="flat",
            borderwidth=0,
            highlightthickness=1,
            highlightbackground=theme.BORDER,
            background=theme.SURFACE,
            foreground=theme.TEXT,
            padx=10,
            pady=6,
            font=theme.font(w),
            tabs=("84p", "180p"),
            cursor="arrow",
            spacing1=2,
            spacing3=2,
        )
        scroll_text(box, self.log)
        self.log.bind(
            "<Key>",
            lambda e: (
                None
                if e.keysym in {"Up", "Down", "Prior", "Next", "Home", "End"}
                or (int(e.state) & 4 and e.keysym.lower() == "c")
                else "break"
            ),
        )
        self.log.tag_configure("time", foreground=theme.MUTED)
        colors = {
            "login": theme.SUCCESS,
            "rejected": theme.DANGER,
            "logout": theme.MUTED,
            "send": theme.ACCENT,
            "delivered": theme.ACCENT,
            "new user": "#7c3aed",
            "server": theme.TEXT,
            "connect": theme.MUTED,
        }
        for kind, color in colors.items():
            self.log.tag_configure("k-" + kind, foreground=color, font=theme.font(w, 0, "bold"))
        panes.add(logf, weight=2)
        self._refresh_header()

    # ===== live data =============================================================================
    def _on_events(self, events: list[ServerEvent]) -> None:
        self.events_seen += len(events)
        self._dirty = True
        pieces: list[Any] = []
        for ev in events[-LOG_MAX_LINES:]:
            kind, sentence = describe(ev)
            pieces += _log_pieces(kind, sentence, ev.at)
        self._append(pieces)

    def _log_line(self, kind: str, sentence: str, at: datetime) -> None:
        self._append(_log_pieces(kind, sentence, at))

    def _append(self, pieces: list[Any]) -> None:
        log = self.log
        log.insert("end", *pieces)
        lines = int(log.index("end-1c").split(".")[0])
        if lines > LOG_MAX_LINES:
            log.delete("1.0", f"{lines - LOG_MAX_LINES}.0")
        if self.follow_var.get():
            log.see("end")
        self.log_summary.configure(text=f"{self.events_seen:,} since the dashboard opened")

    def _tick(self) -> None:
        now = time.monotonic()
        due = (
            self._dirty and now - self._last_snap >= SNAPSHOT_MIN_INTERVAL
        ) or now - self._last_snap >= SNAPSHOT_IDLE_INTERVAL
        if due and not self._snap_inflight and not self.stopping:
            self._snap_inflight = True
            self._dirty = False
            self._last_snap = now
            self.pump.run(self.server.snapshot, done=self._snapshot_done)
        self._refresh_uptime()

    def _snapshot_done(self, fut: Future[ServerSnapshot]) -> None:
        self._snap_inflight = False
        if fut.exception() is not None or self.stopping:
            return
        self.snapshot = fut.result()
        self._refresh_header()
        self._render_table()

    def refresh_now(self) -> None:
        """Ask for a snapshot at the next tick (tests use this to avoid waiting)."""
        self._dirty = True
        self._last_snap = 0.0

    # ===== header ================================================================================
    def _refresh_header(self) -> None:
        snap = self.snapshot
        cfg: ServerConfig = self.server.config
        address = snap.address if snap else self.server.server.address
        tls = snap.tls if snap else cfg.tls_cert is not None
        auth = snap.auth if snap else cfg.auth
        node = f"  ·  node {snap.node}" if snap is not None and snap.node else ""
        self.address_label.configure(text=f"Listening on {address}{node}")
        self._mode_text = (
            f"TLS {'on' if tls else 'off'}  ·  "
            f"auth: {'passwords' if auth == 'password' else 'open (names only)'}"
        )
        self._refresh_uptime()
        if snap is not None:
            for key in ("online", "known", "waiting", "delivered"):
                self.counters[key].configure(text=f"{getattr(snap, key):,}")

    def _refresh_uptime(self) -> None:
        snap = self.snapshot
        if snap is None:
            self.mode_label.configure(text=getattr(self, "_mode_text", ""))
            return
        secs = int((datetime.now(UTC) - snap.started_at).total_seconds())
        days, rem = divmod(max(0, secs), 86400)
        h, rem = divmod(rem, 3600)
        m, s = divmod(rem, 60)
        up = (f"{days} d " if days else "") + f"{h:d}:{m:02d}:{s:02d}"
        self.mode_label.configure(text=f"{self._mode_text}  ·  up {up}")

    # ===== table =================================================================================
    def sort_by(self, col: str) -> None:
        if self._sort_col == col:
            self._sort_reverse = not self._sort_reverse
        else:
            self._sort_col, self._sort_reverse = col, col in ("waiting",)
        for c in COLUMNS:
            arrow = ("  ▼" if self._sort_reverse else "  ▲") if c == self._sort_col else ""
            self.tree.heading(c, text=HEADINGS[c] + arrow)
        self._render_table()

    def _sort_key(self, row: UserRow) -> tuple[Any, ...]:
        name = name_key(row.name)
        match self._sort_col:
            case "status":
                return (not row.online, name)
            case "since":
                at = row.connected_since if row.online else row.last_seen
                return (not row.online, -(at.timestamp() if at else 0.0), name)
            case "waiting":
                return (row.waiting, name)
        return (name,)

    @staticmethod
    def row_values(row: UserRow) -> tuple[str, str, str, str]:
        if row.online:
            since = "online"
            if row.connected_since is not None:
                since += f" since {_local(row.connected_since)}"
            if row.node is not None:
                since += f" on node {row.node}"
        elif row.last_seen is not None:
            since = f"last seen {_local(row.last_seen)}"
        else:
            since = "never connected"
        return (
            row.name,
            "online" if row.online else "offline",
            since,
            f"{row.waiting:,}" if row.waiting else "–",
        )

    def _render_table(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        flt = filter_key(self.filter_var.get())
        rows = [r for r in snap.users if not flt or flt in name_key(r.name)]
        rows.sort(key=self._sort_key, reverse=self._sort_reverse)
        wanted = [name_key(r.name) for r in rows]
        values = {name_key(r.name): (self.row_values(r), r.online) for r in rows}

        def row(_key: str, value: tuple[tuple[str, ...], bool]) -> dict[str, Any]:
            vals, online = value
            return {
                "values": vals,
                "image": self._img_on if online else self._img_off,
                "tags": () if online else ("offline",),
            }

        refill_tree(self.tree, wanted, values, self._shown, self._row_values, row)
        self._shown = wanted
        self._row_values = values
        shown = f" · {len(rows):,} shown" if flt else ""
        self.table_summary.configure(text=f"{snap.known:,} known · {snap.online:,} online{shown}")

    def table_row(self, name: str) -> tuple[str, ...] | None:
        """The table's cells for ``name`` (for tests), or None if not shown."""
        key = name_key(name)
        if not self.tree.exists(key):
            return None
        return tuple(str(v) for v in self.tree.item(key, "values"))

    def log_text(self) -> str:
        return self.log.get("1.0", "end-1c")

    # ===== closing ===============================================================================
    def request_close(self) -> None:
        if self.stopping:
            return
        online = self.snapshot.online if self.snapshot else 0
        who = f" {_plural(online, 'user')} connected now will be disconnected." if online else ""
        if not self.confirm(
            "Stop the Mailslot server?",
            "Closing this window stops the server." + who + " Queued messages stay safely on disk.",
        ):
            return
        self.stop()

    def stop(self) -> None:
        """Stop the server on a worker thread, then close the window."""
        self.stopping = True
        self.address_label.configure(text="Stopping the server…")
        self.window.configure(cursor="watch")
        self.pump.forget_queue(self._events)
        self.pump.run(self.server.stop, done=self._stopped)

    def _stopped(self, fut: Future[None]) -> None:
        exc = fut.exception()
        if exc is not None:
            print(f"mailslot: the server did not stop cleanly: {exc}", file=sys.stderr)
        self.server.server.events.unsubscribe(self._events)
        self.pump.stop()
        if self.on_stopped is not None:
            self.on_stopped()
        with contextlib.suppress(tk.TclError):
            self.window.destroy()


def run_dashboard(config: ServerConfig) -> int:
    """Entry point of ``mailslot server`` on a desktop: serve, show the dashboard, stop cleanly."""
    server = ServerThread(config)
    try:
        server.start()
    except Exception as exc:
        print(f"mailslot: {startup_failure(exc, config)}", file=sys.stderr)
        return 1
    try:
        root = tk.Tk(className="Mailslot")
    except tk.TclError as exc:
        server.stop()
        print(f"mailslot: cannot open the dashboard window: {exc}", file=sys.stderr)
        return 1
    Dashboard(root, server)
    try:
        root.mainloop()
    finally:
        if server.server is not None:
            with contextlib.suppress(Exception):
                server.stop()
    return 0
