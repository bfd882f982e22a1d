"""The lab's VMS: the VAST 5.4 REST API that the guest's `vast_vms` container would serve.

`server.VmsServer` serves it over HTTPS on 127.0.0.1; `resources.Renderer` turns the guest's VAST
world (the events the guest-side player appends, see backend/lab/vast) into the API's objects.
"""
