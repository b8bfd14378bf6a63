"""The micro-batcher on its own: batching, grouping by options, the queue bound, draining."""

from __future__ import annotations

import asyncio

import pytest
from test_serve_support import CountingJudge, grading_judge

from judgelm import Sample
from judgelm.options import JudgeOptions
from judgelm.serve.batcher import MicroBatcher, Overloaded, ShuttingDown


def pair(i: int, good_first: bool = True) -> Sample:
    a, b = ("good", "bad") if good_first else ("bad", "good")
    return Sample(f"Q{i}", (f"{a} {i}", f"{b} {i}"), id=f"s{i}")


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_model_calls_and_get_their_own_verdicts():
    judge = CountingJudge(grading_judge(), gated=True)

    async def main():
        b = MicroBatcher(judge, max_batch_size=8, max_wait_s=0.05, max_queue=64)
        await b.start()
        tasks = [asyncio.create_task(b.submit([pair(i, good_first=i % 2 == 0)])) for i in range(6)]
        await asyncio.sleep(0.02)
        judge.gate.set()
        out = await asyncio.gather(*tasks)
        await b.stop()
        return out, b

    out, b = run(main())
    for i, verdicts in enumerate(out):
        assert len(verdicts) == 1 and verdicts[0].sample_id == f"s{i}"
        assert verdicts[0].winner == (0 if i % 2 == 0 else 1)
    assert sum(n for n, _ in judge.calls) == 6
    assert len(judge.calls) < 6  # batched, not one call per request
    assert b.metrics.batch_size.count() == len(judge.calls)
    assert b.metrics.verdicts.get() == 6


def test_batches_respect_max_size_and_group_by_options():
    judge = CountingJudge(grading_judge(), gated=True)

    async def main():
        b = MicroBatcher(judge, max_batch_size=3, max_wait_s=0.01, max_queue=64)
        await b.start()
        plain = [asyncio.create_task(b.submit([pair(i)])) for i in range(4)]
        swapped = [asyncio.create_task(b.submit([pair(10 + i)], JudgeOptions(swap=True))) for i in range(3)]
        await asyncio.sleep(0.02)
        judge.gate.set()
        res = await asyncio.gather(*plain, *swapped)
        await b.stop()
        return res

    res = run(main())
    assert all(n <= 3 for n, _ in judge.calls)
    # Every call ran with one option set; swap verdicts saw both orders.
    swaps = [kw["swap"] for _, kw in judge.calls]
    assert sum(n for (n, kw) in judge.calls if kw["swap"]) == 3
    assert sum(n for (n, kw) in judge.calls if not kw["swap"]) == 4
    assert True in swaps and False in swaps
    assert all(len(v[0].provenance.orders) == 2 for v in res[4:])
    assert all(len(v[0].provenance.orders) == 1 for v in res[:4])


def test_full_queue_refuses_at_once_and_accepted_work_completes():
    judge = CountingJudge(grading_judge(), gated=True)

    async def main():
        b = MicroBatcher(judge, max_batch_size=2, max_wait_s=0.0, max_queue=4)
        await b.start()
        first = asyncio.create_task(b.submit([pair(0)]))
        while not judge.entered.is_set():  # the first batch is now in the model
            await asyncio.sleep(0.005)
        queued = [asyncio.create_task(b.submit([pair(1 + i)])) for i in range(4)]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as exc:
            await b.submit([pair(99)])
        assert exc.value.retry_after >= 1
        assert b.queued_samples == 4
        judge.gate.set()
        done = await asyncio.gather(first, *queued)
        await b.stop()
        return done, b

    done, b = run(main())
    assert [v[0].sample_id for v in done] == ["s0", "s1", "s2", "s3", "s4"]
    assert b.metrics.rejected.get(reason="overload") == 1


def test_a_call_waits_for_the_model_between_batches_and_counts_against_the_queue():
    """`MicroBatcher.call` (the page's streamed judgements and follow-up chats) shares the one
    model thread: it never runs beside a batch, and it takes a place in the queue."""
    judge = CountingJudge(grading_judge(), gated=True)

    async def main():
        b = MicroBatcher(judge, max_batch_size=2, max_wait_s=0.0, max_queue=2)
        await b.start()
        first = asyncio.create_task(b.submit([pair(0)]))
        while not judge.entered.is_set():  # the first batch is now in the model
            await asyncio.sleep(0.005)
        seen = []
        exclusive = asyncio.create_task(b.call(lambda: seen.append(len(judge.calls)) or "called"))
        await asyncio.sleep(0.02)
        assert seen == []  # waits while the batch runs
        queued = asyncio.create_task(b.submit([pair(1)]))  # the call + this sample fill the queue
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await b.submit([pair(2)])
        with pytest.raises(Overloaded):
            await b.call(lambda: None)
        judge.gate.set()
        out = await asyncio.gather(first, exclusive, queued)
        await b.stop()
        with pytest.raises(ShuttingDown):
            await b.call(lambda: None)
        return out, seen

    (first, called, queued), seen = run(main())
    assert called == "called" and seen == [1]  # after the first batch, before the queued one
    assert first[0].sample_id == "s0" and queued[0].sample_id == "s1"


def test_stop_drains_accepted_requests_then_refuses():
    judge = CountingJudge(grading_judge(), gated=True)

    async def main():
        b = MicroBatcher(judge, max_batch_size=2, max_wait_s=0.0, max_queue=16)
        await b.start()
        tasks = [asyncio.create_task(b.submit([pair(i)])) for i in range(5)]
        await asyncio.sleep(0.01)
        stopping = asyncio.create_task(b.stop())
        await asyncio.sleep(0.01)
        judge.gate.set()
        await stopping
        with pytest.raises(ShuttingDown):
            await b.submit([pair(9)])
        return [t.result() for t in tasks]

    results = run(main())
    assert [r[0].sample_id for r in results] == [f"s{i}" for i in range(5)]


def test_a_failing_request_does_not_fail_its_batch_mates():
    class Picky:
        name = "picky"

        def __init__(self):
            self.inner = grading_judge()

        def judge(self, samples, **kw):
            if any(s.id == "boom" for s in samples):
                raise RuntimeError("model exploded")
            return self.inner.judge(samples, **kw)

    async def main():
        b = MicroBatcher(Picky(), max_batch_size=8, max_wait_s=0.05, max_queue=16)
        await b.start()
        ok = asyncio.create_task(b.submit([pair(1)]))
        bad = asyncio.create_task(b.submit([Sample("Q", ("a", "b"), id="boom")]))
        res = await asyncio.gather(ok, bad, return_exceptions=True)
        await b.stop()
        return res, b

    (ok, bad), b = run(main())
    assert ok[0].sample_id == "s1" and not ok[0].abstained
    assert isinstance(bad, RuntimeError)
    assert b.metrics.batch_errors.get() >= 1


def test_cancelled_requests_cost_no_model_time():
    judge = CountingJudge(grading_judge(), gated=True)

    async def main():
        b = MicroBatcher(judge, max_batch_size=1, max_wait_s=0.0, max_queue=16)
        await b.start()
        first = asyncio.create_task(b.submit([pair(0)]))
        while not judge.entered.is_set():
            await asyncio.sleep(0.005)
        gone = asyncio.create_task(b.submit([pair(1)]))
        kept = asyncio.create_task(b.submit([pair(2)]))
        await asyncio.sleep(0.01)
        gone.cancel()
        judge.gate.set()
        await asyncio.gather(first, kept)
        await b.stop()
        return kept.result()

    kept = run(main())
    assert kept[0].sample_id == "s2"
    assert [n for n, _ in judge.calls] == [1, 1]  # s1 never reached the model


def test_options_parse_untrusted_json_naming_fields():
    from judgelm.errors import InvalidSampleError

    assert JudgeOptions.from_dict({"swap": True, "scoring": "text"}) == JudgeOptions(swap=True, scoring="text")
    assert JudgeOptions.from_dict(None) == JudgeOptions(scoring="auto")
    for bad, field in [
        ({"swap": "yes"}, "options.swap"),
        ({"scoring": "vibes"}, "options.scoring"),
        ({"max_new_tokens": True}, "options.max_new_tokens"),
        ({"max_new_tokens": 10_000}, "options.max_new_tokens"),
        ({"temperature": 1}, "options.temperature"),
        ([1], "options"),
    ]:
        with pytest.raises(InvalidSampleError) as e:
            JudgeOptions.from_dict(bad, max_new_tokens_limit=512)
        assert e.value.field == field
    assert JudgeOptions.from_dict(JudgeOptions(explain=True).to_dict()) == JudgeOptions(explain=True)
