"""The serial console's websocket side: the consumer (`consumers.py`) and its route (`routing.py`).
Tickets, checks and records are `portal.compute.services.consoles`; the streams are the backends'."""
