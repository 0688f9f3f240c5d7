"""The agent's log shipper: numbered lines over ``StreamLogs``, resent until acknowledged.

Lines get sequence numbers 1, 2, ... as they are emitted and stay buffered until the control
plane acknowledges them (an ack covers every line up to its sequence). When the stream breaks
for a transient reason the shipper reopens it and resends what was not acknowledged; the
service stores a sequence once, so a resend never duplicates a line. A refusal (the token is
no longer valid for this try) is final: ``refused`` is set and nothing more is sent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc

from leoflow.rpc import agent_pb2 as pb

FATAL_CODES = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)
"""Answers that no retry can change: the agent must stop."""

_REOPEN_DELAY_SECONDS = 0.5


def utc_stamp() -> str:
    """The current time as RFC 3339 UTC."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class LogShipper:
    """Streams log lines to the control plane; ``emit`` never blocks."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata
        self._buffer: collections.deque[pb.LogLine] = collections.deque()
        self._sequence = 0
        self.acked = 0
        self._new = asyncio.Event()
        self._ack = asyncio.Event()
        self._closing = False
        self.refused: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def sequence(self) -> int:
        """The sequence of the last line emitted."""
        return self._sequence

    def start(self) -> None:
        """Open the stream in the background."""
        self._task = asyncio.create_task(self._run(), name="agent-logs")

    def emit(self, stream: str, level: str, message: str) -> None:
        """Queue one line (stdout, stderr or agent)."""
        if self.refused:
            return
        self._sequence += 1
        self._buffer.append(
            pb.LogLine(
                sequence=self._sequence,
                timestamp=utc_stamp(),
                level=level,
                stream=stream,
                message=message,
            )
        )
        self._new.set()

    async def close(self, timeout: float) -> bool:
        """Wait (up to ``timeout``) until every line is acknowledged; True when all were."""
        self._closing = True
        self._new.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.acked < self._sequence and not self.refused:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._ack.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ack.wait(), remaining)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        return self.acked >= self._sequence

    async def _run(self) -> None:
        while not self.refused:
            if self._closing and self.acked >= self._sequence:
                return
            try:
                call = self._stub.StreamLogs(self._requests(), metadata=self._metadata)
                async for ack in call:
                    self._on_ack(ack.sequence)
                if self._closing and self.acked >= self._sequence:
                    return
            except grpc.aio.AioRpcError as exc:
                if exc.code() in FATAL_CODES:
                    self.refused = f"{exc.code().name}: {exc.details()}"
                    self._ack.set()
                    return
            await asyncio.sleep(_REOPEN_DELAY_SECONDS)

    def _on_ack(self, sequence: int) -> None:
        self.acked = max(self.acked, sequence)
        while self._buffer and self._buffer[0].sequence <= self.acked:
            self._buffer.popleft()
        self._ack.set()

    async def _requests(self) -> AsyncIterator[pb.LogLine]:
        sent = self.acked
        while True:
            self._new.clear()
            for line in [line for line in self._buffer if line.sequence > sent]:
                yield line
                sent = line.sequence
            if self._closing and sent >= self._sequence:
                return
            if sent >= self._sequence:
                await self._new.wait()
