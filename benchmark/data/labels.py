"""File-name labels from untrusted text (dataset strings, grid names): a writer names files after `safe_label`, never
after the text itself, so a dataset given as `/data/own/xrays` or a record saying `../../x` cannot place a file outside
the writer's folder."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection

MAX_SLUG = 60
DIGEST_CHARS = 8
UNNAMED = "unnamed"


def safe_label(text: str, reserved: Collection[str] = ()) -> str:
    """A lowercase slug of the text's last path component ([a-z0-9._-], no leading dot), with a short digest of the
    whole text appended whenever the slug differs from the text or is `reserved`, so different texts never share a
    label: `pneumoniamnist` stays itself, `/data/own/xrays` becomes `xrays-<digest>`."""
    text = str(text)
    slug = _slug(re.split(r"[/\\]", text.rstrip("/\\"))[-1]) or UNNAMED
    if slug == text and slug not in reserved:
        return slug
    return f"{slug}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:DIGEST_CHARS]}"


def _slug(component: str) -> str:
    """Lowercase, runs of anything outside [a-z0-9._-] as one '-', no leading dots or dashes, at most MAX_SLUG long."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", component.lower())
    return slug.lstrip(".-")[:MAX_SLUG].rstrip(".-")
