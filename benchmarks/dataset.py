"""A realistic Minsky-shaped store: nested prState/pullRequest, legacy fields, ~1 KB a record."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Bump when record() changes: benchmarks cache generated stores under this version.
VERSION = 1


def record(i: int, rng: random.Random) -> dict[str, Any]:
    task = f"md#{i}"
    name = f"task-{task}"
    repo = rng.choice(["acme/widgets", "acme/gadgets", "globex/api", "initech/tps-reports"])
    created = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z"
    data: dict[str, Any] = {
        "session": name,
        "repoName": repo,
        "repoUrl": f"https://github.com/{repo}.git",
        "repoPath": f"/home/dev/src/{repo.split('/')[1]}",
        "createdAt": created,
        "taskId": task,
        "branch": name,
        "backendType": "github",
        "prBranch": f"pr/{name}",
        "prApproved": i % 3 == 0,
        "workspacePath": f"/home/dev/.local/state/minsky/sessions/{name}",
        "prState": {
            "branchName": f"pr/{name}",
            "exists": i % 2 == 0,
            "commitHash": f"{rng.getrandbits(160):040x}",
            "lastChecked": created,
            "createdAt": created,
            "mergedAt": None if i % 4 else created,
        },
        "pullRequest": {
            "number": i,
            "url": f"https://github.com/{repo}/pull/{i}",
            "state": rng.choice(["open", "closed", "merged", "draft"]),
            "createdAt": created,
            "headBranch": f"pr/{name}",
            "baseBranch": "main",
            "lastSynced": created,
            "github": {
                "id": 2_000_000_000 + i,
                "nodeId": f"PR_kwDO{rng.getrandbits(48):012x}",
                "htmlUrl": f"https://github.com/{repo}/pull/{i}",
                "author": rng.choice(["octocat", "hubot", "monalisa"]),
                "assignees": ["octocat"],
                "reviewers": ["hubot", "monalisa"],
                "labels": ["session", "minsky"],
                "milestone": None,
            },
        },
    }
    if i % 10 == 0:  # legacy records
        data.update({"name": name, "created": created, "sessionPath": f"/tmp/{name}"})
    if i % 50 == 0:  # fields from a newer writer
        data["notes"] = "written by a newer minsky"
    return data


def records(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(n):
        yield record(i, rng)


def write_json_store(path: Path, n: int) -> None:
    """Stream the store to disk without holding it in memory."""
    with path.open("w", encoding="utf-8") as out:
        out.write('{"sessions": [')
        for i, item in enumerate(records(n)):
            out.write(("\n" if i == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
        out.write('\n], "baseDir": "/home/dev/.local/state/minsky"}\n')


def write_bare_array(path: Path, n: int) -> None:
    """The same records as a bare JSON array (the form ``sqlite-utils insert`` takes)."""
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for i, item in enumerate(records(n)):
            out.write(("\n" if i == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
        out.write("\n]\n")
