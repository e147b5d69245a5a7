"""An undo stack for multi-step host changes: a failure half-way leaves nothing behind."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Reverter:
    """Collect undo steps; on an exception they run in reverse order, else they are dropped.

        with Reverter() as revert:
            ns.create(); revert.add(ns.delete)
            ...
            revert.success()
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def add(self, undo: Callable[[], object]) -> None:
        self._undo.append(undo)

    def success(self) -> None:
        """Keep everything: forget the undo steps."""
        self._undo.clear()

    def revert(self) -> None:
        """Run every undo step, newest first; one failing step does not stop the rest."""
        while self._undo:
            step = self._undo.pop()
            try:
                step()
            except Exception:  # noqa: BLE001 - undo must go on; the cause is logged
                log.exception("undo step %r failed", step)

    def __enter__(self) -> Reverter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None:
            self.revert()
