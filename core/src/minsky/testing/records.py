"""Records that exercise every shape a store must carry without loss."""

from __future__ import annotations

from typing import Any

from minsky.codec import record_from_dict
from minsky.model import SessionRecord

SAMPLE_DICTS: list[dict[str, Any]] = [
    {
        "session": "plain",
        "repoName": "acme/widgets",
        "repoUrl": "https://github.com/acme/widgets.git",
        "createdAt": "2025-01-20T10:30:00.000Z",
        "taskId": "md#101",
        "branch": "plain",
        "backendType": "github",
    },
    {
        "session": "falsy-values",
        "repoName": "",
        "repoUrl": "",
        "createdAt": "2025-01-21T08:00:00Z",
        "taskId": "",
        "branch": None,
        "prApproved": False,
        "prBranch": "",
    },
    {
        "session": "nested-pr",
        "repoName": "acme/widgets",
        "repoUrl": "u",
        "createdAt": "2025-01-22T09:15:30.123Z",
        "taskId": "#102",
        "prState": {
            "branchName": "pr/x",
            "exists": True,
            "commitHash": "9f2c1e7",
            "lastChecked": "2025-01-22T09:15:30.123Z",
            "mergedAt": None,
        },
        "pullRequest": {
            "number": 57,
            "state": "open",
            "github": {"id": 2233445566778899001122, "labels": ["a"], "assignees": [], "futureKey": {"x": 1}},
        },
    },
    {
        "session": "legacy; 'quoted' \"name\"",
        "name": "legacy",
        "created": "2024-11-02T17:45:12.5+02:00",
        "repoPath": "/home/dev/src/notes",
        "createdAt": "2024-11-02T17:45:12.5+02:00",
        "github": {"owner": "acme", "repo": "gadgets"},
    },
    {
        "session": "unicode-üñï-日本-\U0001f600-e\u0301-\u05e9\u05dc\u05d5\u05dd",
        "repoName": "r",
        "repoUrl": "u",
        "createdAt": "2025-04-10T12:00:00.000001Z",
        "taskId": "123",
        "notes": "written by a newer minsky: keep me",
        "reviewers": {"required": 2, "teams": ["core"]},
        "ratio": 0.1,
        "big": 123456789012345678901234567890,
    },
    {
        "session": "ended",
        "repoName": "r",
        "repoUrl": "u",
        "createdAt": "2025-02-01T00:00:00Z",
        "taskId": "md#7",
        "endedAt": "2025-02-02T00:00:00.000Z",
    },
]


def sample_records() -> list[SessionRecord]:
    return [record_from_dict(dict(d)) for d in SAMPLE_DICTS]


def generated_records(n: int, prefix: str = "gen") -> list[SessionRecord]:
    return [
        record_from_dict(
            {
                "session": f"{prefix}-{i:06d}",
                "repoName": "acme/widgets",
                "repoUrl": "u",
                "createdAt": f"2025-01-01T00:00:{i % 60:02d}.000Z",
                "taskId": f"md#{i % 7}",
                "prApproved": i % 2 == 0,
            }
        )
        for i in range(n)
    ]
