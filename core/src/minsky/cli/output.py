"""How results reach the user: one JSON object on stdout for ``--json``, text otherwise."""

from __future__ import annotations

import json
from typing import Any

import click

from minsky.codec import record_to_dict
from minsky.model import SessionRecord
from minsky.redact import MASK


def public_record(record: SessionRecord) -> dict[str, Any]:
    """The record as shown to a user: the GitHub token is masked."""
    data = dict(record_to_dict(record))  # the codec's dict is shared: copy before masking
    github = data.get("github")
    if isinstance(github, dict) and github.get("token"):
        data["github"] = {**github, "token": MASK}
    return data


def emit_json(payload: Any) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False, indent=2))


# Names are data from any store: a control character must not drive the user's terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    return text.translate(_CONTROL)


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
