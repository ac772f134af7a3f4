"""The local web console: the review queue, runs as they happen, the net with its tokens, predicted against measured.

``petriflow ui --db RUNS.sqlite`` serves it on 127.0.0.1 with an access
token printed once (:mod:`~petriflow.ui.auth`). The pages read the
checkpoint store through its public methods (:mod:`~petriflow.ui.views`,
:mod:`~petriflow.ui.live`, :mod:`~petriflow.ui.compare`); answering a
review goes through :func:`petriflow.execute.answers.record_answer`, the
path ``petriflow answer`` takes; ``/metrics`` (:mod:`~petriflow.ui.metrics`)
is fed by the same trace records. See ``docs/ui.md``.
"""

from __future__ import annotations

__all__ = ["make_app", "serve"]

from petriflow.ui.app import make_app
from petriflow.ui.server import serve
