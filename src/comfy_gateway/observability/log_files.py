"""The log files' writer: a RotatingFileHandler that counts what it writes.

The standard library's handler asks the file system before every line whether the path is a
regular file (two `stat`s) and seeks the file to learn its size (two `lseek`s): four system calls a
line, each one a hand-over of the GIL between the writer thread and the event loop. This one learns
both when it opens the file and then adds up the bytes it writes; it rolls over at the same size.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from typing import Any


class CountingRotatingFileHandler(logging.handlers.RotatingFileHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._size = 0
        self._regular = True
        self._encoding = "utf-8"
        super().__init__(*args, **kwargs)

    def _open(self) -> Any:
        stream = super()._open()
        # bpo-45401: never roll over anything but a regular file (/dev/null, a pipe)
        self._regular = os.path.isfile(self.baseFilename)
        self._size = stream.seek(0, os.SEEK_END)
        self._encoding = stream.encoding  # what it encodes with ("locale" is resolved by then)
        return stream

    def _bytes_of(self, record: logging.LogRecord) -> int:
        return len((self.format(record) + self.terminator).encode(self._encoding))

    def _past_limit(self, size: int) -> bool:
        if self.stream is None:
            self.stream = self._open()
        return self.maxBytes > 0 and self._regular and self._size + size >= self.maxBytes

    def shouldRollover(self, record: logging.LogRecord) -> int:
        return self._past_limit(self._bytes_of(record))

    def emit(self, record: logging.LogRecord) -> None:
        """The line is measured once, for the rollover check and the count."""
        try:
            size = self._bytes_of(record)
            if self._past_limit(size):
                self.doRollover()
            logging.FileHandler.emit(self, record)
            self._size += size
        except Exception:
            self.handleError(record)
