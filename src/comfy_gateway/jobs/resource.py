"""`async with` for the stores: anything with `open()` and `close()` gets it from here.

Their life cycle is `comfy_gateway.lifecycle.Lifecycle`: a closed store cannot be opened again."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
