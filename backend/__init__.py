"""The vast-loopback engine: answers, sizing, Proxmox and guest clients, tuning, install, monitoring,
diagnosis, the run journal and the report. It emits typed events and never imports the UI."""
