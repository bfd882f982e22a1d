"""The clients: Proxmox's API, the guest over SSH (commands, detached jobs, host keys), the VMS and
its certificate, this machine's own network, and safely quoted shell commands."""
