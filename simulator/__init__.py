"""Transaction simulator of the Fraud Detection Handbook (Le Borgne et al., Chapter 3)."""

from fraudstream.simulator.records import (
    COLUMNS,
    CsvFormatError,
    Dataset,
    format_timestamp,
    parse_timestamp,
    read_csv,
    to_records,
    write_csv,
)
from fraudstream.simulator.transactions import SimulationConfig, simulate

__all__ = [
    "COLUMNS",
    "CsvFormatError",
    "Dataset",
    "SimulationConfig",
    "format_timestamp",
    "parse_timestamp",
    "read_csv",
    "simulate",
    "to_records",
    "write_csv",
]
