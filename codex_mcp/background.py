"""Work a long-running process keeps doing beside its main job."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio


@asynccontextmanager
async def running_beside(task: Callable[[], Coroutine[Any, Any, object]]) -> AsyncIterator[None]:
    """Run ``task`` in the background while the block runs; it is cancelled when the block ends."""
    async with anyio.create_task_group() as group:
        group.start_soon(task)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
