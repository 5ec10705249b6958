"""Work messages: what apim-dr writes round-trips, anything else is refused (the host retries, then parks it)."""

import pytest

from dr_core.jobs.messages import InvalidMessageError, WorkMessage

JOB = "backup-20261122T020000Z-apim-one-0123abcd"


def test_messages_round_trip():
    for msg in (WorkMessage("start", job=JOB), WorkMessage("poll", job=JOB, seq=3),
                WorkMessage("fanout", jobs=(JOB, JOB.replace("apim-one", "apim-two")))):
        assert WorkMessage.decode(msg.encode()) == msg


@pytest.mark.parametrize("text", [
    "", "not json", "[]", f'{{"v": 2, "op": "start", "job": "{JOB}"}}', f'{{"v": 1, "op": "delete", "job": "{JOB}"}}',
    '{"v": 1, "op": "start", "job": "../../etc"}', f'{{"v": 1, "op": "poll", "job": "{JOB}", "seq": -1}}',
    f'{{"v": 1, "op": "poll", "job": "{JOB}", "seq": true}}', '{"v": 1, "op": "fanout", "jobs": []}',
    "x" * 100_000,
])
def test_foreign_messages_are_refused(text):
    with pytest.raises(InvalidMessageError):
        WorkMessage.decode(text)
