"""Labels and split names as folder and file names that cannot leave the export folder."""

from __future__ import annotations

import hashlib
import unicodedata

_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_UNSAFE = set('/\\:*?"<>|')


def safe_name(value, max_bytes: int = 120) -> str:
    """One path component made from ``value``: no separators, NUL, control characters, leading or
    trailing dots/spaces, or Windows device names; at most ``max_bytes`` of UTF-8."""
    text = unicodedata.normalize("NFC", str(value))
    text = "".join("_" if ch in _UNSAFE or ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    text = text.strip(" .")
    if text.split(".")[0].upper() in _RESERVED:
        text = "_" + text
    text = text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") or "_"
    return text


def folder_names(values) -> dict:
    """Map each value to a distinct safe folder name (distinct even on case-insensitive file systems).

    A name that had to change, or that two values share, gets ``~`` and 8 hex digits of a hash of
    the value (its type included, so ``1`` and ``"1"`` stay apart)."""
    values = list(dict.fromkeys(values))
    base = {v: safe_name(v) for v in values}
    seen: dict[str, int] = {}
    for name in base.values():
        seen[name.casefold()] = seen.get(name.casefold(), 0) + 1
    out = {}
    for v, name in base.items():
        if name != str(v) or seen[name.casefold()] > 1:
            digest = hashlib.sha1(f"{type(v).__name__}:{v}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
            name = f"{safe_name(v, 110)}~{digest}"
        out[v] = name
    if len({n.casefold() for n in out.values()}) != len(out):
        raise ValueError("export: two labels map to the same folder name even after hashing; rename one of them")
    return out


def unique_file_name(name: str, taken: set) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... whichever is not yet in ``taken`` (casefolded)."""
    stem, dot, ext = name.rpartition(".")
    stem, ext = (stem, dot + ext) if dot and stem else (name, "")
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    taken.add(candidate.casefold())
    return candidate
