"""Helpers shared by the fixture scripts: up-to-date checks and JSON-friendly number formatting."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

REF_DIR = os.path.dirname(os.path.abspath(__file__))


def sources_digest(*extra_files: str) -> str:
    """sha256 over this reference package's sources plus `extra_files` (the calling script): a fixture is stale
    when the code that made it changed (mtimes are useless after a git checkout)."""
    h = hashlib.sha256()
    files = sorted(os.path.join(REF_DIR, f) for f in os.listdir(REF_DIR) if f.endswith(".py"))
    for f in files + [os.path.abspath(x) for x in extra_files]:
        h.update(os.path.basename(f).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def file_identity(path: str) -> dict:
    """Size + sha256 of the first and last MiB: cheap, and changes when a model file is replaced."""
    size = os.path.getsize(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return {"size": size, "sha256_head_tail": h.hexdigest()}


def up_to_date(json_path: str, key: dict, other_outputs=()) -> bool:
    """True when json_path exists, all other outputs exist, and json's "generator" equals `key`."""
    if not os.path.exists(json_path) or not all(os.path.exists(p) for p in other_outputs):
        return False
    try:
        with open(json_path, encoding="utf-8") as f:
            return json.load(f).get("generator") == key
    except (OSError, ValueError):
        return False


def rounded(a, digits: int = 7):
    """Floats as a (nested) list with `digits` significant digits (float32 precision; keeps the JSON small)."""
    def go(v):
        return [go(x) for x in v] if isinstance(v, list) else float(f"{v:.{digits}g}")
    return go(np.asarray(a, dtype=np.float64).tolist())
