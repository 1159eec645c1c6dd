"""``ech serve``: the operator's server, built on the asyncio adapter.

* :mod:`ech.serve.service`: the per-connection service (limits, logs).
* :mod:`ech.serve.keyring`: ECH key files and directories, live rotation.
* :mod:`ech.serve.metrics`: Prometheus counters and their endpoint.
* :mod:`ech.serve.status_page`: what a handshake was, as JSON over HTTP.
* :mod:`ech.serve.doh`: DoH answered from the live keys (``--doh``).
"""
