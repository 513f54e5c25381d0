"""KapMan: ETL toolkit for a TimescaleDB market-data warehouse."""

__version__ = "0.1.0"
