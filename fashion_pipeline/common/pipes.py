"""Reporting from a training process to Dagster Pipes, shared by the detector's and the DCGAN's CLIs.

A training CLI prints its progress; when an asset launched it through ``PipesSubprocessClient``
(and only on rank 0 under torchrun) the same lines also go to the run's event log, and the final
numbers come back as the materialization's metadata. Run by hand, nothing here needs Dagster.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Mapping


class Reporter:
    """Prints lines; under Dagster Pipes also forwards them and the final metadata."""

    def __init__(self, pipes=None):
        self.pipes = pipes

    def log(self, message: str, to_pipes: bool = True) -> None:
        print(message, flush=True)
        if self.pipes is not None and to_pipes:
            self.pipes.log.info(message)

    def report_metadata(self, metadata: Mapping) -> None:
        """The materialization's metadata, as Pipes' JSON-able values (ints, floats, text, ``{"raw_value", "type"}``)."""
        if self.pipes is not None:
            self.pipes.report_asset_materialization(metadata=dict(metadata))


@contextlib.contextmanager
def open_reporter(rank: int = 0, reporter_class: type = Reporter, **kwargs) -> Iterator:
    """``reporter_class(pipes, **kwargs)``: connected to Pipes on rank 0 when Dagster launched us, else printing
    only (also where dagster-pipes is not installed, e.g. a bare GPU box running the CLI)."""
    try:
        from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes
    except ImportError:
        PipesEnvVarParamsLoader = None
    if rank == 0 and PipesEnvVarParamsLoader is not None and PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            yield reporter_class(pipes, **kwargs)
    else:
        yield reporter_class(None, **kwargs)
