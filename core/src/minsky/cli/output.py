"""How results reach the user: one JSON object on stdout for ``--json``, text otherwise.

Everything minsky prints goes through ``echo`` (text), ``emit_json`` (JSON) or
``warn``: names, paths and messages are data from any store, and a control
character must not drive the user's terminal, a lone surrogate must not crash
the print, and a bidirectional override must not reorder what the user reads.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import click

from minsky.redact import MASK, redact_text

if TYPE_CHECKING:
    from minsky.model import SessionRecord

_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
# What a terminal would obey: C0 and C1 controls and DEL; plus lone surrogates and bidi overrides.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0xD800, 0xE000), *_BIDI)})
# A line may break and tab; the values inside it (``printable``) may not.
_IN_LINE = {c: text for c, text in _CONTROL.items() if c not in (0x09, 0x0A)}
# JSON escapes C0 itself; what it leaves raw (inside strings only) becomes \uXXXX.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff" + "".join(chr(c) for c in _BIDI) + "]")


def printable(text: str) -> str:
    """One value (a name, a path) made safe to show inside a line."""
    return text.translate(_CONTROL)


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a line of text: the single path of every text output."""
    click.echo(text.translate(_IN_LINE), err=err, nl=nl)


def warn(text: str) -> None:
    echo(f"minsky: warning: {printable(text)}", err=True)


def emit_json(payload: Any) -> None:
    text = redact_text(json.dumps(payload, ensure_ascii=False, indent=2))
    click.echo(_JSON_UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text))


def public_record(record: SessionRecord) -> dict[str, Any]:
    """The record as shown to a user: the GitHub token is masked."""
    from minsky.codec import record_to_dict

    data = dict(record_to_dict(record))  # the codec's dict is shared: copy before masking
    github = data.get("github")
    if isinstance(github, dict) and github.get("token"):
        data["github"] = {**github, "token": MASK}
    return data


def show(value: object) -> str:
    if value is None:
        return "-"
    return printable(str(value))


def record_line(record: SessionRecord) -> str:
    status = "active" if record.active else "ended"
    task = record.task_id if isinstance(record.task_id, str) and record.task_id else "-"
    repo, created = show(record.repo_name or None), show(record.created_at or None)
    return f"{printable(record.session)}\t{printable(task)}\t{repo}\t{created}\t{status}"


def record_detail(record: SessionRecord) -> str:
    data = public_record(record)
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        shown = (
            json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list, bool)) or value is None else value
        )
        lines.append(f"{printable(key).ljust(width)}  {printable(str(shown))}")
    lines.append(f"{'status'.ljust(width)}  {'active' if record.active else 'ended'}")
    return "\n".join(lines)


def names(items: list[str], limit: int | None = None) -> str:
    """A list of names for one line, each escaped; ``limit`` shows the first few and "…"."""
    shown = items if limit is None else items[:limit]
    return ", ".join(printable(name) for name in shown) + (" …" if limit is not None and len(items) > limit else "")
