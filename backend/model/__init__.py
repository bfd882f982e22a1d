"""The model: the answers file and the rules that judge it (sizing, guest memory, the VM's
configuration, host facts). Pure data and functions, no I/O beyond reading a file."""
