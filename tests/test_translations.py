"""Chinese and English kept in step: every source string has a Chinese translation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "app" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"


def _catalog():
    with PO.open("rb") as handle:
        return read_po(handle, locale="zh_Hans_CN")


def test_every_chinese_entry_is_translated():
    untranslated = []
    for message in _catalog():
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if "fuzzy" in message.flags or not all(strings):
            untranslated.append(message.id)
    assert untranslated == [], f"untranslated or fuzzy entries: {untranslated[:20]}"


def test_catalog_holds_every_string_in_the_source(tmp_path):
    pot = tmp_path / "current.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-k",
            "lazy_gettext",
            "-k",
            "_",
            "--no-location",
            "-o",
            str(pot),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as handle:
        source = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    catalog = {m.id if isinstance(m.id, str) else m.id[0] for m in _catalog() if m.id}
    missing = sorted(source - catalog)
    assert missing == [], f"run `make extract-messages` and translate: {missing[:20]}"


def test_placeholders_survive_translation():
    import re

    placeholder = re.compile(r"%\((\w+)\)[sd]")
    for message in _catalog():
        if not message.id or not isinstance(message.id, str):
            continue
        assert set(placeholder.findall(message.id)) == set(placeholder.findall(message.string)), message.id
