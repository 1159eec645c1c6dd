"""``ech serve``: the operator's server, built on :mod:`ech.aio` and :mod:`ech.http`.

* :mod:`ech.serve.app`: the running command: options, keys, server,
  metrics endpoint, signals and graceful shutdown.
* :mod:`ech.serve.workers`: ``--workers N``: the supervisor of N worker
  processes on one port (sockets, restarts, orders, summed metrics);
  :mod:`ech.serve.worker`: one worker process and its control channel.
* :mod:`ech.serve.keyring`: ECH key files and directories, live rotation.
* :mod:`ech.serve.connection_log`: the server's observer: one log line per
  connection, and the metrics.
* :mod:`ech.serve.metrics`: Prometheus counters;
  :mod:`ech.serve.metrics_endpoint`: ``GET /metrics`` over plain HTTP.
* :mod:`ech.serve.status_page`: what a handshake was, as JSON over HTTP.
* :mod:`ech.serve.doh`: DoH answered from the live keys (``--doh``).
"""
