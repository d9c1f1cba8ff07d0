"""Named places in an operation's step where a worker may die, so that the fault tests can kill a
real worker exactly there, once, and watch the portal recover by its own means.

Nothing is armed in production: `crash_point(name)` returns at once when `COMPUTE_CRASH_FILE` is
not set. A test starts the worker with `COMPUTE_CRASH_FILE=<path>` and arms a point by writing its
name into that file. The first process to reach the point removes the file (so one arming is one
crash) and kills itself with SIGKILL, as the kernel's OOM killer or a lost machine would: no
exception handler, `finally` or on-commit callback runs.
"""

from __future__ import annotations

import os
import signal
from enum import StrEnum

from django.conf import settings


class CrashPoint(StrEnum):
    BEFORE_CLOUD_CALL = "before-cloud-call"  # claimed, nothing asked of the cloud yet
    AFTER_CLOUD_CALL = "after-cloud-call"  # the cloud did it; its answer not saved yet
    BEFORE_NEXT_CHECK = "before-next-check"  # the answer saved; the next step not queued yet
    DURING_FINISH = "during-finish"  # finishing, inside the transaction, before it commits
    AFTER_FINISH = "after-finish"  # finished and committed; its e-mail not handed over yet


def crash_point(point: CrashPoint) -> None:
    path = settings.COMPUTE_CRASH_FILE
    if not path:
        return
    try:
        with open(path) as armed:
            if armed.read().strip() != point:
                return
        os.remove(path)  # of two processes here at once, one removes it: one crash per arming
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
