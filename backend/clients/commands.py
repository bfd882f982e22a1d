"""Building shell commands safely: every argument goes through shlex.quote, never pasted.

`sh("echo", value)` -> a command line where `value` is one argument whatever it contains;
`pipe(...)` and `seq(...)` join already-built commands; `write_file(path, text)` writes content
without the content ever being parsed by the shell.
"""

from __future__ import annotations

import shlex


def sh(*argv: object) -> str:
    """One command line from arguments, each quoted."""
    if not argv:
        raise ValueError("sh() needs at least a program")
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def seq(*commands: str) -> str:
    """Commands run one after the other; stops at the first failure."""
    return " && ".join(f"( {c} )" for c in commands)


def pipe(*commands: str) -> str:
    return " | ".join(commands)


def write_file(path: str, text: str, mode: str | None = None) -> str:
    """A command writing `text` to `path` exactly (printf '%s' with a quoted argument)."""
    command = f"printf '%s' {shlex.quote(text)} > {shlex.quote(path)}"
    if mode:
        command += " && " + sh("chmod", mode, path)
    return command


