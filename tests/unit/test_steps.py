"""Only infrastructure trouble is retried."""

from __future__ import annotations

import pytest

from isobench.models.outcomes import CrashCause, Outcome, OutcomeRecord
from isobench.tasks.patch_apply import StepFailure
from isobench.tasks.steps import infra_only


class _State:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def result(self) -> None:
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (StepFailure(OutcomeRecord(outcome=Outcome.INFRA_ERROR, reason="disk")), True),
        (StepFailure(OutcomeRecord(outcome=Outcome.PATCH_FAILED, reason="x")), False),
        (StepFailure(OutcomeRecord(outcome=Outcome.SERVER_CRASHED, cause=CrashCause.OTHER)), False),
        (StepFailure(OutcomeRecord(outcome=Outcome.BENCHMARK_TIMEOUT)), False),
        (ConnectionResetError("engine went away"), True),
        (None, False),
    ],
)
def test_infra_only(error: BaseException | None, retried: bool) -> None:
    assert infra_only(None, None, _State(error)) is retried
