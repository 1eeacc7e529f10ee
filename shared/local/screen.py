"""Where `make dev` writes: its own lines and live table to the terminal, everything else to files.

The functions run in processes of their own and their output goes to a log per
function (local.lambda_service). What make dev's own process prints besides
(moto's server, the libraries it runs) goes, unless --verbose, to
`<data dir>/stack.log`: file descriptor 1 is pointed there before anything
starts, and make dev keeps a duplicate of the original descriptor for itself.
Output that is not a terminal gets plain lines, never wrapped, never redrawn.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import IO

from rich.console import Console

LOG_NAME = "stack.log"


class Screen:
    def __init__(self, data_dir: Path, *, verbose: bool) -> None:
        self.log_path: Path | None = None
        if verbose:
            self.stream: IO[str] = sys.stdout
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = data_dir / LOG_NAME
            sys.stdout.flush()
            own = os.dup(1)
            log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.close(log)
            self.stream = os.fdopen(own, "w", buffering=1)
            # Powertools' reminder that an invocation had no metrics: noise on a terminal.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
        self.interactive = self.stream.isatty()
        # soft_wrap: a long line (a URL, the token) is never split, whatever the width.
        self.console = Console(file=self.stream, soft_wrap=True, force_terminal=self.interactive or None)

    def line(self, text: str) -> None:
        """One plain line, as is: no markup, no wrapping."""
        print(text, file=self.stream, flush=True)

    def markup(self, text: str) -> None:
        """A line with rich markup on a terminal, the plain text elsewhere."""
        self.console.print(text)
