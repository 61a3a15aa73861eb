"""Waiting for another thread or process to get somewhere, with a deadline that fails the test saying what it waited for."""

import time


def wait_for(condition, timeout: float = 10.0, what: str = "condition", every: float = 0.01):
    """condition()'s first truthy value; an AssertionError once `timeout` seconds have passed without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
