"""The dead-letter log: alerts that could not be delivered, kept before their offsets are
committed; :class:`AlertingError` when it cannot be written (nothing is committed then)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerting.errors import AlertingError
from alerting.settings import redact_url
from alerting.times import rfc3339_seconds
from consumers.forward.targets import Item, Target


class DeadLetterLog:
    """Alerts that could not be delivered, one JSON object per line, appended and synced."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock

    def check(self) -> None:
        """Raise :class:`AlertingError` now if the file cannot be appended to."""
        try:
            with open(self.path, "a"):
                pass
        except OSError as exc:
            raise AlertingError(
                f"cannot open the dead-letter log {self.path} ({exc.strerror}); set "
                "forward.dead_letter_path (ALERTING__FORWARD__DEAD_LETTER_PATH) or "
                "--dead-letters to a writable file"
            ) from None

    def write(
        self, target: Target | None, item: Item, reason: str, detail: str, attempts: int
    ) -> None:
        entry: dict[str, Any] = {
            "time": rfc3339_seconds(self.clock()),
            "target": target.name if target is not None else None,
            "url": redact_url(target.url) if target is not None else None,
            "reason": reason,
            "detail": detail,
            "attempts": attempts,
            "topic": item.topic,
            "partition": item.partition,
            "offset": item.offset,
            "alert": item.cloudevent,
        }
        if item.cloudevent is None:
            entry["raw"] = (item.raw or b"").decode(errors="replace")
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        try:
            with open(self.path, "a") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())  # on disk before the offset is committed
        except OSError as exc:
            raise AlertingError(
                f"cannot write the dead-letter log {self.path} ({exc.strerror}); nothing "
                "was committed: fix it or set forward.dead_letter_path"
            ) from None
