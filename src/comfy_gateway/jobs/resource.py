"""`async with` for the stores: anything with `open()` and `close()` gets it from here."""

from __future__ import annotations

import enum
from types import TracebackType
from typing import Self


class Phase(enum.Enum):
    """Where a store is in its life: a closed store cannot be opened again."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class OpenClose:
    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
