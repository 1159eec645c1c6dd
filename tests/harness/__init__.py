"""The one test harness: what the unit, service, CLI and interop tests share.

* :mod:`tests.harness.pki`: a test CA with leaves for names and key types,
  written as PEM files (keys 0600) and, when asked, an NSS database.
* :mod:`tests.harness.serve`: the ``ech`` command (:func:`run_ech`) and
  ``ech serve`` as a subprocess (:func:`serve_process`).
* :mod:`tests.harness.loop`: an asyncio loop in a thread, for blocking tests
  that need an asyncio server (:class:`BackgroundLoop`).
* :mod:`tests.harness.http`: the status page's JSON object, from an
  :mod:`ech.http` response or from another client's raw bytes.
* :mod:`tests.harness.grease`: a client random source whose GREASE
  config_id avoids the server's keys (:func:`random_avoiding_config_ids`).
* ``tests/harness/wiretap/``: a ``sitecustomize`` that, on ``PYTHONPATH``,
  records what each Python process started sends over TCP (the README
  quickstart's commands, run unchanged).

The benchmarks are scripts run from ``benchmarks/`` and use
:class:`ech.pki.TestCA` directly, as ``ech demo`` does.
"""
