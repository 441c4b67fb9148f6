"""The consumer's offset gate (what it passes on, skips and seeks back to) and the flow
control of the stream buffers (when they are cleared).

Both are pure logic, tested here with the sequences a rebalance produces. That the real
consumer loses nothing under rebalances is shown by the fault tests (a worker added,
killed or stopped mid-stream, tests/faults).
"""

from __future__ import annotations

from faust.types import TP
from mode.utils.queues import FlowControlQueue

from notifyhub.kafka.consumer import OffsetGate, StreamFlowControl

ACCEPTED = TP("deployment.accepted", 0)


class LogStart:
    """The broker's log start offset for every partition, counting the questions."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.asked = 0

    async def __call__(self, tp: TP) -> int:
        self.asked += 1
        return self.offset


async def verdicts(gate: OffsetGate, offsets: list[int], log_start: LogStart) -> list[int | None]:
    return [await gate.admit(ACCEPTED, offset, log_start) for offset in offsets]


async def test_records_in_order_pass_from_the_committed_offset() -> None:
    gate = OffsetGate()
    gate.expect(ACCEPTED, 40)
    assert await verdicts(gate, [40, 41, 42], LogStart(0)) == [None, None, None]


async def test_a_record_from_before_the_seek_sends_the_partition_back_to_the_expected_offset() -> None:
    gate, log_start = OffsetGate(), LogStart(0)
    gate.expect(ACCEPTED, 54)
    # A batch fetched from the old position: 57 and on came before 54, 55, 56.
    assert await verdicts(gate, [57, 58, 59], log_start) == [54, 54, 54]
    assert log_start.asked == 1, "the rest of a stale batch does not ask the broker again"
    gate.expect(ACCEPTED, 54)  # the consumer's seek back
    assert await verdicts(gate, [54, 55, 56, 57, 58], log_start) == [None] * 5


async def test_records_passed_on_already_are_skipped_not_sought() -> None:
    gate = OffsetGate()
    gate.expect(ACCEPTED, 10)
    assert await verdicts(gate, [10, 11, 12], LogStart(0)) == [None, None, None]
    assert await verdicts(gate, [11, 12, 13], LogStart(0)) == [11, 12, None]


async def test_records_deleted_by_retention_are_a_real_hole() -> None:
    gate, log_start = OffsetGate(), LogStart(100)
    gate.expect(ACCEPTED, 54)
    # Where the log now starts is passed on; anything beyond it goes back to the start.
    assert await verdicts(gate, [120], log_start) == [100]
    assert await verdicts(gate, [100, 101], log_start) == [None, None]


async def test_a_partition_without_a_committed_offset_takes_the_first_record_it_gets() -> None:
    gate = OffsetGate()
    gate.expect(ACCEPTED, None)
    assert await verdicts(gate, [7, 8], LogStart(0)) == [None, None]


async def test_each_partition_has_its_own_expectation() -> None:
    gate, other = OffsetGate(), TP("deployment.accepted", 1)
    gate.expect(ACCEPTED, 5)
    gate.expect(other, 9)
    assert await gate.admit(other, 9, LogStart(0)) is None
    assert await gate.admit(ACCEPTED, 9, LogStart(0)) == 5


def stream_buffer(flow_control: StreamFlowControl, *records: str) -> FlowControlQueue[str]:
    """An agent's buffer as Faust makes it: cleared on resume, by its app's flow control."""
    buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow_control, clear_on_resume=True)
    for record in records:
        buffer.put_nowait(record)
    return buffer


def test_resuming_suspended_flow_clears_the_buffers_of_the_rebalance() -> None:
    # Faust's own order: suspend when partitions are revoked, resume after recovery; what
    # was buffered before the rebalance is fetched again from the committed offsets.
    flow_control = StreamFlowControl()
    flow_control.resume()
    buffer = stream_buffer(flow_control, "fetched before the rebalance")
    flow_control.suspend()
    flow_control.resume()
    assert buffer.empty()
    assert flow_control.is_active()


def test_resuming_flow_that_is_flowing_keeps_the_buffers() -> None:
    # Recovery resumes once when the changelogs are read and again after the seek to the
    # committed offsets: what was passed on in between must reach the agents.
    flow_control = StreamFlowControl()
    flow_control.resume()
    buffer = stream_buffer(flow_control, "accepted[1]@5", "accepted[1]@6")
    flow_control.resume()
    assert flow_control.buffered() == 2
    assert [buffer.get_nowait(), buffer.get_nowait()] == ["accepted[1]@5", "accepted[1]@6"]
    assert flow_control.is_active()
