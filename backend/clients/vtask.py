"""A VMS VTask as the engine reads it: which states end a task well or badly, and its messages.

Light on purpose (no HTTP client): the install, the diagnosis, the report and the dashboard share it.
"""

from __future__ import annotations

from typing import Any

# A VTask's states (vms54: RUNNING, COMPLETED, FAILED, UNKNOWN, TIMEOUT, PARTIALLY_COMPLETED), decided on
# purpose (vast.md §4): vast-ansible keeps polling through TIMEOUT, PARTIALLY_COMPLETED and UNKNOWN
# until its own 300 s run out, go-vast-client fails on anything but completed or running. Here a task
# the VMS says timed out or only partly completed has ended without doing its work: the run fails at
# once with the task's messages (nothing waits 20 minutes for a task that is over). UNKNOWN is the VMS
# not knowing (its services restart during a deploy, as vast-ansible's tolerance of poll errors says):
# it is waited through for UNKNOWN_TASK_GRACE_S of target time, then it is a failure too
# (backend/steps/install.py). Cluster states are never checked against a list; task states are, these ones.
TASK_FAILED_STATES = {"FAILED", "TIMEOUT", "PARTIALLY_COMPLETED", "CANCELLED", "ERROR"}
TASK_DONE_STATES = {"COMPLETED", "SUCCESS", "SUCCEEDED"}
TASK_UNSURE_STATES = {"UNKNOWN"}
UNKNOWN_TASK_GRACE_S = 10 * 60


def task_messages(value: Any) -> list[str]:
    """A VTask's `messages` as a list of strings, whatever shape the VMS sends. The 5.4 OpenAPI types
    it as an object; clients (go-vast-client's `core/async_result.go`) read it as a list of strings
    (ground-truth §11). A list gives its items, an object its values in order (a value that is a list
    gives its items), a string itself, any other value its text. Keys are never messages."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in task_messages(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in (task_messages(item) if isinstance(item, list | dict)
                                                    else [str(item)] if item is not None else [])]
    return [str(value)]
