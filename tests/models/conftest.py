"""The real local model servers for the shipped workflows' end-to-end tests (the execution tests' fixture)."""

from tests.execute.conftest import local_models, pytest_configure, pytest_unconfigure

__all__ = ["local_models", "pytest_configure", "pytest_unconfigure"]
