"""Reading the pushed digest from dockerd's and podman's push progress messages."""

from __future__ import annotations

import pytest

from leoflow.builder.image import _pushed_digest

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"aux": {"Tag": "1", "Digest": DIGEST, "Size": 1}}, DIGEST),  # dockerd
        ({"status": f"1: digest: {DIGEST} size: 1573"}, DIGEST),  # podman
        ({"status": "Pushing", "progress": "[===>   ]"}, ""),
        ({"aux": {"Tag": "1"}, "status": "done"}, ""),
    ],
)
def test_pushed_digest(message: dict[str, object], expected: str) -> None:
    assert _pushed_digest(message) == expected
