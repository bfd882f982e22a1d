"""The demo served to a browser (`demo --web`): the built-in lab only, and no reads on the server.

Whoever holds the page drives a wizard that runs on the server, so in that session
- the target is the built-in lab, whatever the flags (`--speed 1` would let a real host through
  everywhere else): a real Proxmox URL is refused before anything connects to it;
- no secret reference (`env:NAME`, `file:PATH`) nor any other server path the answers could name
  is accepted: nothing of the server's environment or files is read, or even looked for, on a
  visitor's behalf;
- the guest is the lab's own (its address `dhcp`, as the lab hands it out): a fixed address could
  name another machine of the server's network, which the run would then log in to;
- the answers are never saved to a path the visitor types.

The screens hide what the kiosk refuses (`WizardApp.kiosk`); the openers are wrapped with
`lab_only`, so the refusal holds even where a screen would let something through. No Textual here.
"""

from __future__ import annotations

from pydantic import BaseModel

from backend.errors import BadInput
from backend.model.answers import Answers
from backend.secrets import SecretRef

REFUSED = "the web demo runs on the built-in lab only"


def references(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the fields holding a secret reference (`guest.password`, ...)."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretRef):
            found.append(prefix + name)
        elif isinstance(value, BaseModel):
            found.extend(references(value, f"{prefix}{name}."))
    return found


def check_answers(answers: Answers) -> None:
    """BadInput unless the answers stay on the lab and name nothing on the server."""
    if answers.proxmox.url != "lab":
        raise BadInput(f"{REFUSED}: a Proxmox host ({answers.proxmox.url}) cannot be reached from here",
                       hint="run vast-loopback on your own machine to install on a real host")
    if answers.guest.address != "dhcp":
        raise BadInput(f"{REFUSED}: the guest is the lab's own, its address found as the lab hands it out "
                       f"(not {answers.guest.address})", hint="leave guest.address at dhcp")
    named = references(answers) + (["vast.ca_file"] if answers.vast.ca_file else [])
    if named:
        raise BadInput(f"{REFUSED}: secret references and files are not read here ({', '.join(named)})",
                       hint="leave them empty: the lab uses the OVA's documented defaults")


def lab_only(opener):  # noqa: ANN001, ANN201 - any (answers, ...) -> awaitable opener
    """`opener` (a probe or target opener), refusing answers that leave the lab or name a secret."""

    async def guarded(answers: Answers, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        check_answers(answers)
        return await opener(answers, *args, **kwargs)

    return guarded
