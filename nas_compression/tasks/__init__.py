"""Proxy tasks behind the searches (``base``: the protocol): image classification (``classify``) and the planner
itself (``planner``). A task builds, trains, quantizes and measures candidates; the strategies decide which."""
