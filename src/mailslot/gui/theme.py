"""One look for every Mailslot window: the ttk "clam" theme, a calm palette and DejaVu Sans."""

from __future__ import annotations

import tkinter as tk
from tkinter import font as tkfont
from tkinter import ttk
from typing import Final

BG: Final = "#f4f5f7"
SURFACE: Final = "#ffffff"
HEADER_BG: Final = "#1f2937"
HEADER_FG: Final = "#f9fafb"
HEADER_MUTED: Final = "#9ca3af"
TEXT: Final = "#1f2328"
MUTED: Final = "#5f6b7a"
BORDER: Final = "#d0d7de"
ACCENT: Final = "#2563eb"
ACCENT_ACTIVE: Final = "#1d4ed8"
ACCENT_LIGHT: Final = "#dbeafe"
SUCCESS: Final = "#15803d"
WARNING: Final = "#b45309"
DANGER: Final = "#c62828"
ONLINE: Final = "#16a34a"
OFFLINE: Final = "#9ca3af"
NEW_BG: Final = "#eef4ff"

FAMILY: Final = "DejaVu Sans"
MONO: Final = "DejaVu Sans Mono"
BASE_SIZE: Final = 10
PAD: Final = 10
"""The standard gap between blocks, in pixels (8–12 px everywhere)."""


def _pick_family(root: tk.Misc, wanted: str, fallback: str) -> str:
    families = set(tkfont.families(root))
    return wanted if wanted in families else fallback


def apply(root: tk.Misc) -> None:
    """Configure fonts and ttk styles for the Tk interpreter that owns ``root``.

    Safe to call more than once (the demo calls it for each window).
    """
    family = _pick_family(root, FAMILY, "TkDefaultFont")
    mono = _pick_family(root, MONO, "TkFixedFont")
    for name in (
        "TkDefaultFont",
        "TkTextFont",
        "TkMenuFont",
        "TkCaptionFont",
        "TkSmallCaptionFont",
        "TkIconFont",
        "TkTooltipFont",
    ):
        tkfont.nametofont(name, root=root).configure(family=family, size=BASE_SIZE)
    tkfont.nametofont("TkHeadingFont", root=root).configure(
        family=family, size=BASE_SIZE, weight="bold"
    )
    tkfont.nametofont("TkFixedFont", root=root).configure(family=mono, size=BASE_SIZE)

    style = ttk.Style(root)
    style.theme_use("clam")
    base = (family, BASE_SIZE)
    bold = (family, BASE_SIZE, "bold")
    style.configure(
        ".",
        background=BG,
        foreground=TEXT,
        font=base,
        bordercolor=BORDER,
        focuscolor=ACCENT,
        troughcolor=BG,
        lightcolor=BG,
        darkcolor=BORDER,
    )
    style.configure("TFrame", background=BG)
    style.configure("Surface.TFrame", background=SURFACE)
    style.configure("Header.TFrame", background=HEADER_BG)
    style.configure("TLabel", background=BG, foreground=TEXT)
    style.configure("Surface.TLabel", background=SURFACE)
    style.configure("Title.TLabel", font=(family, BASE_SIZE + 5, "bold"))
    style.configure("Section.TLabel", font=(family, BASE_SIZE + 1, "bold"))
    style.configure("Muted.TLabel", foreground=MUTED)
    style.configure("Error.TLabel", foreground=DANGER)
    style.configure("Success.TLabel", foreground=SUCCESS)
    style.configure("Warning.TLabel", foreground=WARNING)
    style.configure(
        "HeaderTitle.TLabel",
        background=HEADER_BG,
        foreground=HEADER_FG,
        font=(family, BASE_SIZE + 3, "bold"),
    )
    style.configure("Header.TLabel", background=HEADER_BG, foreground=HEADER_FG, font=base)
    style.configure("HeaderMuted.TLabel", background=HEADER_BG, foreground=HEADER_MUTED)
    style.configure(
        "HeaderValue.TLabel",
        background=HEADER_BG,
        foreground=HEADER_FG,
        font=(family, BASE_SIZE + 4, "bold"),
    )
    style.configure(
        "Badge.TLabel",
        background=DANGER,
        foreground="#ffffff",
        font=bold,
        padding=(7, 1),
        anchor="center",
    )
    style.configure(
        "BadgeIdle.TLabel",
        background=BORDER,
        foreground=MUTED,
        font=bold,
        padding=(7, 1),
        anchor="center",
    )
    style.configure("TButton", padding=(12, 5), background="#eceff3")
    style.map(
        "TButton",
        background=[("disabled", "#f0f1f3"), ("active", "#e1e5ea")],
        foreground=[("disabled", "#a0a7b1")],
    )
    style.configure(
        "Accent.TButton",
        background=ACCENT,
        foreground="#ffffff",
        font=bold,
        bordercolor=ACCENT_ACTIVE,
        lightcolor=ACCENT,
        darkcolor=ACCENT_ACTIVE,
    )
    style.map(
        "Accent.TButton",
        background=[("disabled", "#b8c7ea"), ("pressed", ACCENT_ACTIVE), ("active", ACCENT_ACTIVE)],
        foreground=[("disabled", "#f3f6fc")],
        lightcolor=[("disabled", "#b8c7ea")],
        darkcolor=[("disabled", "#b8c7ea")],
    )
    style.configure("Header.TButton", padding=(10, 3))
    style.configure("TEntry", padding=(6, 4), fieldbackground=SURFACE)
    style.map("TEntry", bordercolor=[("focus", ACCENT)], lightcolor=[("focus", ACCENT)])
    style.configure("Invalid.TEntry", fieldbackground="#fdecec", bordercolor=DANGER)
    style.configure("TRadiobutton", background=BG, padding=(2, 2))
    style.configure("TCheckbutton", background=BG)
    style.configure("TLabelframe", background=BG, bordercolor=BORDER)
    style.configure("TLabelframe.Label", background=BG, foreground=MUTED, font=bold)
    style.configure("TNotebook", background=BG, tabmargins=(0, 4, 0, 0))
    style.configure("TNotebook.Tab", padding=(16, 6), font=base, background="#e6e9ee")
    style.map(
        "TNotebook.Tab",
        background=[("selected", SURFACE)],
        font=[("selected", bold)],
        expand=[("selected", (0, 2, 0, 0))],
    )
    line = tkfont.Font(root=root, family=family, size=BASE_SIZE).metrics("linespace")
    style.configure(
        "Treeview",
        background=SURFACE,
        fieldbackground=SURFACE,
        foreground=TEXT,
        rowheight=int(line) + 8,
        bordercolor=BORDER,
    )
    style.map("Treeview", background=[("selected", ACCENT_LIGHT)], foreground=[("selected", TEXT)])
    style.configure("Treeview.Heading", font=bold, padding=(6, 4), background="#eceff3")
    style.configure("Picker.Treeview", rowheight=int(line) + 6)
    style.map(
        "Picker.Treeview",
        background=[("disabled", "#f3f4f6"), ("selected", ACCENT_LIGHT)],
        foreground=[("disabled", "#a0a7b1"), ("selected", TEXT)],
    )
    style.configure("Vertical.TScrollbar", arrowsize=13)
    style.configure("TPanedwindow", background=BG)
    style.configure("Sash", sashthickness=6, gripcount=0)
    if isinstance(root, tk.Tk | tk.Toplevel):
        root.configure(background=BG)
    _select_all_with_ctrl_a(root)


def _select_all_with_ctrl_a(root: tk.Misc) -> None:
    """Ctrl+A selects everything in text fields, as elsewhere on the desktop (Tk's own
    binding moves to the start of the line, as in Emacs)."""

    def entry(event: tk.Event[tk.Misc]) -> str:
        widget = event.widget
        if isinstance(widget, tk.Entry | ttk.Entry):
            widget.selection_range(0, "end")
            widget.icursor("end")
        return "break"

    def text(event: tk.Event[tk.Misc]) -> str:
        if isinstance(event.widget, tk.Text):
            event.widget.tag_add("sel", "1.0", "end-1c")
        return "break"

    for sequence in ("<Control-a>", "<Control-A>"):
        for widget_class in ("TEntry", "Entry"):
            root.bind_class(widget_class, sequence, entry)
        root.bind_class("Text", sequence, text)


def font(root: tk.Misc, delta: int = 0, weight: str = "normal", mono: bool = False) -> tkfont.Font:
    """A font of the house family, ``delta`` points above the base size."""
    family = _pick_family(
        root, MONO if mono else FAMILY, "TkFixedFont" if mono else "TkDefaultFont"
    )
    return tkfont.Font(root=root, family=family, size=BASE_SIZE + delta, weight=weight)  # type: ignore[arg-type]
