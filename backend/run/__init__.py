"""Running: the engine's front door (service.py), the engine and its plan, the journal and the run
directory, the event bus, the run lock and the private file writer."""
