"""The offline market sandbox: a deterministic synthetic market served over the real protocols.

- :class:`kapman.sandbox.market.Market`: universe, calendar, daily bars, flat files, option chains.
- :class:`kapman.sandbox.rest.SandboxRestServer`: Polygon/Massive REST with faults and a settable clock.
- :class:`kapman.sandbox.s3.SandboxS3` and :func:`kapman.sandbox.mirror.write_mirror`: flat files, with
  a preliminary file at the close and its correction the next morning (``publish_preliminary``,
  ``publish_final``, ``write_preliminary``) and 403 on chosen objects or listings (``forbid``).
- ``python -m kapman.sandbox serve`` runs both servers and prints the environment to use them.
"""
