"""The one test harness: what tests, interop peers and benchmarks share.

* :mod:`tests.harness.pki`: a test CA with leaves for names and key types,
  written as PEM files (keys 0600) and, when asked, an NSS database.
* :mod:`tests.harness.serve`: the ``ech`` command (:func:`run_ech`) and
  ``ech serve`` as a subprocess (:func:`serve_process`).
* :mod:`tests.harness.loop`: an asyncio loop in a thread, for blocking tests
  that need an asyncio server (:class:`BackgroundLoop`).
* :mod:`tests.harness.http`: the status page request and its parsed JSON; the
  one place that speaks HTTP by hand.
"""
