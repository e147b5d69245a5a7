"""The test harness lives in the package so benchmarks can use it too."""

from atwill.devcloud import BIN, Cloud, CommandFailed, free_port, unique

__all__ = ["BIN", "Cloud", "CommandFailed", "free_port", "unique"]
