"""Daily operation: what is due by KapMan's clock (``sessions``), what the warehouse holds
(``inventory``), whether it is healthy (``status``) and the nightly catch-up (``nightly``)."""
