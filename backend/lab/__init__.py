"""The built-in lab: a Proxmox VE API, a guest over real SSH running real bash in a user + mount
namespace, and a VMS REST API, with scenarios replaying the field report's three attempts.

Importing this package registers the 'lab' target provider (see backend/target.py). Only entry
points import it; the engine never asks whether it runs on the lab."""

from backend.lab import provider as _provider  # noqa: F401  (registers the provider)
