from __future__ import annotations

import pytest

from tests.ui.harness import chromium_missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = chromium_missing()
    if why is None:
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))
