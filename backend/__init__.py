"""The vast-loopback engine: answers, sizing, Proxmox and guest clients, tuning, install, monitoring,
diagnosis, the run journal and the report. It emits typed events and never imports the UI.

Every import of the engine passes here first, and so before asyncssh's: the one place where a
known third-party warning is silenced. asyncssh (2.24, the newest) still names DSA key classes,
which `cryptography` (since 47) deprecates on every access with a CryptographyDeprecationWarning;
nothing of ours uses DSA, and a user must not read ten lines of it before each command's output.
The filter is narrow: that message, that category's name, raised from asyncssh's own modules.
"""

import warnings

warnings.filterwarnings("ignore", message=r"DSA is deprecated", module=r"asyncssh(\.|$)")
