"""The reports' HTML: one self-contained page shell, and figures embedded as ``data:`` URIs.

A report is a single file with no scripts or images fetched from elsewhere: plots are PNGs
inlined as base64, and the styles are in the page. The study and the sweep add their own
sections and styles to the shared shell.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

#: Styles shared by every report; a report appends its own.
BASE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;
 color:#222;background:#fafafa}
main{margin:0 auto;padding:24px 32px 48px}
h1{margin:0 0 4px;font-size:26px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;
 font-size:20px}
.meta{color:#555;font-size:14px} .note{background:#fff8e1;border-left:4px solid #f0b400;
 margin:6px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #ddd;text-align:right} th{background:#f0f0f0}
figure{background:#fff;border:1px solid #e3e3e3;padding:8px}
figure img{max-width:100%;display:block;margin:0 auto}
figcaption{font-size:13px;color:#555;margin-top:4px}
code{background:#eee;padding:1px 4px;border-radius:3px}
"""


def page(title: str, body: str, css: str = "", script: str = "") -> str:
    """A whole HTML page: ``title``, the shared styles plus ``css``, ``body``, then ``script``.

    Args:
        title: The page title (escaped here).
        body: The content of ``<main>``, already HTML.
        css: Styles added after :data:`BASE_CSS` (they win where both set a property).
        script: JavaScript run at the end of the page (none by default).

    Example:
        >>> text = page("A & B", "<p>hi</p>")
        >>> text.startswith("<!DOCTYPE html>") and "<title>A &amp; B</title>" in text
        True
    """
    tail = f"<script>{script}</script>" if script else ""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{BASE_CSS}{css}</style></head>"
            f"<body><main>{body}</main>{tail}</body></html>\n")


def png_uri(figure: Any) -> str:
    """Render a matplotlib ``Figure`` (no pyplot needed) as a PNG ``data:`` URI.

    Example:
        >>> from matplotlib.figure import Figure
        >>> png_uri(Figure(figsize=(1, 1))).startswith("data:image/png;base64,")
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return png_bytes_uri(buffer.getvalue())


def png_bytes_uri(data: bytes) -> str:
    """PNG bytes (e.g. a picture file's) as a ``data:`` URI.

    Example:
        >>> png_bytes_uri(b"x")
        'data:image/png;base64,eA=='
    """
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_html(uri: str | None, caption: str, name: str | None = None) -> str:
    """A ``<figure>`` showing ``uri`` with ``caption``; ``""`` when there is no figure.

    Args:
        uri: A ``data:`` URI (see :func:`png_uri`), or ``None``.
        caption: The caption, also the image's alt text (escaped here).
        name: Gives the image class ``plot`` and id ``plot-<name>`` (for tests and links).

    Example:
        >>> figure_html("data:image/png;base64,", "Loss", "curves")[:44]
        '<figure><img class="plot" id="plot-curves" a'
        >>> figure_html(None, "nothing")
        ''
    """
    if uri is None:
        return ""
    ident = f'class="plot" id="plot-{name}" ' if name else ""
    text = html.escape(caption)
    return (f'<figure><img {ident}alt="{text}" src="{uri}"><figcaption>{text}</figcaption>'
            "</figure>")
