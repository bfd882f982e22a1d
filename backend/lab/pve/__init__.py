"""The lab's Proxmox VE API: an HTTPS server that answers like a real Proxmox VE host.

`server.PveServer` serves it; `schema` validates every request against the official schema;
`api` implements the endpoints over `state.PveState` (VMs, configs, snapshots, tasks), which is
persisted under the lab's state directory and advanced by the lab clock.
"""
