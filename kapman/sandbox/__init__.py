"""The offline market sandbox: a deterministic synthetic market served over the real protocols.

- :class:`kapman.sandbox.market.Market`: universe, calendar, daily bars, flat files, option chains.
- :class:`kapman.sandbox.rest.SandboxRestServer`: Polygon/Massive REST with faults and a settable clock.
- :class:`kapman.sandbox.s3.SandboxS3` and :func:`kapman.sandbox.mirror.write_mirror`: flat files.
- ``python -m kapman.sandbox serve`` runs both servers and prints the environment to use them.
"""
