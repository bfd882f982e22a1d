"""Keeping a secret out of a guest command's output, at the source.

A secret reaches the guest in a 0600 file (through stdin, never in a command line we send); the
command reads it into the environment, deletes the file, and hands it on in the environment of the
one process that needs it (`VMS_PASSWORD=$VLB_MASK vman.sh ...`, see backend.steps.install), never as
an argument (/proc/<pid>/cmdline is readable by every user). Its output goes through a small filter
that replaces the secret with `******` before anything is written, in case a tool echoes it after
all (the field's vman.sh echoed its command line, password included, into the install log): the
job log on the guest, the lines we follow and everything downstream never hold it.

    store_command(path)            write stdin to `path` (umask 077); send the secret as its input
    masked_command(cmd, path, rc)  `cmd` (which names the secret as SECRET_WORD) with masked output
"""

from __future__ import annotations

import shlex

MASK_ENV = "VLB_MASK"
SECRET_WORD = f'"${MASK_ENV}"'  # the shell word a command built for `masked_command` uses for the secret
MASK = "******"

# The filter (Python 3.6+, standard library): bytes in, the secret replaced, bytes out at once.
# Only a tail that could be the start of the secret is held back until more output comes.
_FILTER = f"""\
import os
secret = os.environb.get(b"{MASK_ENV}", b"")
held = b""
while True:
    chunk = os.read(0, 65536)
    data = held + chunk
    if secret:
        data = data.replace(secret, b"{MASK}")
    keep = 0
    if chunk and secret:
        for size in range(min(len(secret) - 1, len(data)), 0, -1):
            if secret.startswith(data[-size:]):
                keep = size
                break
    out, held = data[:len(data) - keep], data[len(data) - keep:]
    while out:
        out = out[os.write(1, out):]
    if not chunk:
        break
"""

PYTHONS = ("/usr/libexec/platform-python", "python3")


def store_command(path: str) -> str:
    """Write this command's stdin to `path`, readable by its owner only."""
    return f"umask 077 && cat > {shlex.quote(path)}"


def masked_command(command: str, secret_file: str, status_file: str) -> str:
    """Run `command` (a shell command line using SECRET_WORD where the secret goes: in a variable
    assignment, never as an argument) with the secret read from `secret_file` (deleted at once),
    stdout and stderr through the mask; exits with `command`'s status (kept in `status_file`).
    Refuses to run without a Python for the filter, rather than let the secret through."""
    q = shlex.quote
    pick = " ".join(f"[ -n \"$vlb_py\" ] || vlb_py=$(command -v {q(p)});" for p in PYTHONS)
    return (
        f"vlb_py=; {pick} "
        "[ -n \"$vlb_py\" ] || { echo 'no python on the guest to keep the password out of the log'; exit 127; }; "
        f"{MASK_ENV}=$(cat {q(secret_file)}) && rm -f -- {q(secret_file)} && export {MASK_ENV} || exit 1; "
        f"{{ ( {command} ) 2>&1; echo $? > {q(status_file)}; }} | \"$vlb_py\" -c {q(_FILTER)}; "
        f"exit \"$(cat {q(status_file)} 2>/dev/null || echo 1)\""
    )
