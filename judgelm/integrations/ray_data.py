"""Batch judging on Ray Data: one judge per GPU (an actor pool), results written as they finish,
and a killed job resumed without redoing or losing a record.

How it stays exactly-once: the driver owns the output file, a `ResultWriter` (append-only JSONL,
one whole line per ``write``, torn last line dropped on reopening, owned by one job: see
`judgelm.output_file`). Each record has a stable key (`record_key`: its id, else a content hash).
On start the keys already in the file are handed to the actors, which skip those records;
results stream back to the driver, which writes each key once. A kill loses only results not
yet written, and those records are judged again next time.

`judge_dataset` maps any ``ray.data.Dataset`` of native/JudgeLM records; `judge_file` reads a
JSONL file like ``judgelm judge`` does (same keys, so the two engines can resume each other's
output); `run_judge_command` is ``judgelm judge ... --engine ray``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgelm import strict_json
from judgelm.errors import InvalidSampleError, JudgeLMError, MissingDependencyError
from judgelm.integrations.records import check_sample, record_key
from judgelm.io import (
    JobStamp,
    Record,
    ResultWriter,
    error_record,
    output_record,
    read_samples,
    sample_from_record,
)
from judgelm.options import JudgeOptions

__all__ = ["RayJudgeSummary", "judge_dataset", "judge_file", "run_judge_command"]

JudgeSpec = str | None | Callable[[], Any]

# Column names of the rows `judge_file` builds (key + the record as JSON text: Arrow needs one
# schema for all rows, and JSONL records rarely share one).
_KEY, _RECORD = "__judgelm_key__", "__judgelm_record__"


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingDependencyError("ray", "ray", "Ray batch judging") from None
    return ray


@dataclass(frozen=True)
class RayJudgeSummary:
    """What one run did: ``written`` verdict lines (``abstained`` of them abstains), ``errors``
    (records that could not be judged, written as error lines), ``skipped`` (already in the
    output when the run started), ``duplicates`` (keys seen twice in this run, written once),
    ``failed`` (records of the input whose output line is an error line, from this run or before)."""

    output: str
    written: int
    abstained: int
    errors: int
    skipped: int
    duplicates: int
    seconds: float
    failed: int = 0

    def line(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (
            f"judged {self.written} (abstained: {self.abstained}); bad records: {self.errors}; "
            f"already done: {self.skipped}; duplicates: {self.duplicates}; "
            f"{self.seconds:.1f} s, {rate:.2f} samples/s"
        )


def _build_judge(spec: JudgeSpec, kwargs: Mapping[str, Any]) -> Any:
    if callable(spec):
        return spec()
    from judgelm.judge import Judge

    return Judge.from_pretrained(spec, **kwargs)


class _JudgeActor:
    """One judge (one model copy) in a Ray actor; judges a batch of rows into output lines."""

    def __init__(
        self,
        judge: JudgeSpec,
        judge_kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        done: frozenset[str],
        id_column: str | None,
        keyed: bool,
        base_dir: str | None,
        no_reference: bool,
    ):
        self.judge = _build_judge(judge, judge_kwargs)
        self.options = dict(options)
        self.done = done
        self.id_column = id_column
        self.keyed = keyed
        self.base_dir = Path(base_dir) if base_dir else None
        self.no_reference = no_reference

    def _row(self, row: Mapping[str, Any]) -> tuple[str, Any]:
        if self.keyed:
            return row[_KEY], json.loads(row[_RECORD])
        return record_key(row, self.id_column), dict(row)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        keys: list[str] = []
        lines: list[str] = []
        todo: list[Record] = []
        for n, row in enumerate(batch.to_pylist()):
            try:
                key, raw = self._row(row)
            except InvalidSampleError as e:  # no key: report it under a content hash
                key, raw = record_key(row), dict(row)
                keys.append(key)
                lines.append(_error_line(key, e, raw))
                continue
            if key in self.done:
                continue
            try:
                sample = sample_from_record(raw, mode=self.options.get("mode"), base_dir=self.base_dir)
                if self.no_reference:
                    sample = sample.replace(reference=None)
                check_sample(sample, self.options.get("mode"))
                todo.append(Record(n, key, raw, sample=sample.replace(id=sample.id or key)))
            except InvalidSampleError as e:
                keys.append(key)
                lines.append(_error_line(key, e, raw))
        if todo:
            verdicts = self.judge.judge([r.sample for r in todo], **self.options)
            for rec, verdict in zip(todo, verdicts, strict=True):
                keys.append(rec.key)
                lines.append(strict_json.dumps(output_record(rec, verdict, model=self.judge.name), default=str))
        return pa.table({"key": pa.array(keys, pa.string()), "line": pa.array(lines, pa.string())})


def _error_line(key: str, e: InvalidSampleError, raw: Any) -> str:
    return strict_json.dumps({"id": key, "error": {"message": e.detail, "field": e.field}, "input": raw}, default=str)


def _stamp(judge: JudgeSpec, options: JudgeOptions) -> JobStamp:
    """The output's owner when the caller names none: the judge (name, or its factory) and options."""
    name = judge if isinstance(judge, str) else "demo" if judge is None else f"{judge.__module__}.{judge.__qualname__}"
    return JobStamp(judge=name, options=options.to_dict())


def _ensure_ray(ray_init: Mapping[str, Any] | None) -> Any:
    ray = _ray()
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        kwargs.update(ray_init or {})
        ray.init(**kwargs)
    return ray


def _pool_shape(ray: Any, num_actors: int | None, num_gpus: float | None) -> tuple[int, float]:
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if num_gpus is None:
        num_gpus = 1.0 if gpus >= 1 else 0.0  # one judge per GPU; CPU-only actors otherwise
    if num_actors is None:
        num_actors = max(1, int(gpus // num_gpus)) if num_gpus > 0 else 1
    if num_actors < 1:
        raise ValueError("num_actors must be >= 1")
    return num_actors, num_gpus


def _stream(
    dataset: Any,
    writer: ResultWriter,
    *,
    judge: JudgeSpec,
    judge_kwargs: Mapping[str, Any] | None,
    options: JudgeOptions,
    num_actors: int | None,
    num_gpus_per_actor: float | None,
    num_cpus_per_actor: float,
    batch_size: int,
    id_column: str | None,
    keyed: bool,
    base_dir: str | None,
    no_reference: bool,
    progress: bool,
    on_line: Callable[[dict[str, Any]], None] | None,
    skipped: int,
    start: float,
    digests: Mapping[str, str | None] | None = None,
) -> RayJudgeSummary:
    ray = _ray()
    from ray.data import ActorPoolStrategy, DataContext

    if not (judge is None or isinstance(judge, str) or callable(judge)):
        raise TypeError("judge must be a model name/path (loaded in each actor) or a zero-argument factory")
    size, gpus = _pool_shape(ray, num_actors, num_gpus_per_actor)
    ctx = DataContext.get_current()
    old_progress = ctx.enable_progress_bars
    ctx.enable_progress_bars = progress
    written = abstained = errors = duplicates = 0
    try:
        mapped = dataset.map_batches(
            _JudgeActor,
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=size),
            num_gpus=gpus,
            num_cpus=num_cpus_per_actor,
            fn_constructor_kwargs={
                "judge": judge,
                "judge_kwargs": dict(judge_kwargs or {}),
                "options": options.as_kwargs(),
                "done": frozenset(writer.done),
                "id_column": id_column,
                "keyed": keyed,
                "base_dir": base_dir,
                "no_reference": no_reference,
            },
        )
        for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
            for key, line in zip(batch.column("key").to_pylist(), batch.column("line").to_pylist(), strict=True):
                if key in writer.done:
                    duplicates += 1
                    continue
                obj = json.loads(line)
                writer.write(obj, digest=(digests or {}).get(key))
                if "error" in obj:
                    errors += 1
                else:
                    written += 1
                    abstained += bool(obj["verdict"]["abstained"])
                if on_line is not None:
                    on_line(obj)
    finally:
        ctx.enable_progress_bars = old_progress
    return RayJudgeSummary(
        str(writer.path),
        written,
        abstained,
        errors,
        skipped,
        duplicates,
        time.perf_counter() - start,
    )


def judge_dataset(
    dataset: Any,
    output: str | os.PathLike[str],
    *,
    judge: JudgeSpec = None,
    judge_kwargs: Mapping[str, Any] | None = None,
    options: JudgeOptions | None = None,
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    num_cpus_per_actor: float = 1.0,
    batch_size: int = 32,
    id_column: str | None = None,
    progress: bool = False,
    on_line: Callable[[dict[str, Any]], None] | None = None,
    ray_init: Mapping[str, Any] | None = None,
    job: JobStamp | None = None,
    restart: bool = False,
) -> RayJudgeSummary:
    """Judge every record of a ``ray.data.Dataset`` into ``output`` (JSONL), resumably.

    - ``judge``: a model name/folder loaded by `Judge.from_pretrained` in each actor (with
      ``judge_kwargs``), or a zero-argument factory returning a `Judge` (run in each actor).
    - ``num_actors`` / ``num_gpus_per_actor``: default one actor per GPU of the cluster with one
      GPU each; on a cluster without GPUs, one CPU actor (``num_gpus=0``).
    - ``id_column``: the column that keys records (default ``id``, then ``question_id``, then a
      hash of the record). Run the same call again to resume: keys already in ``output`` are
      skipped.
    - ``on_line``: called on the driver with each output line as it is written.
    - ``ray_init``: keyword arguments for ``ray.init`` when Ray is not initialised yet.
    - ``job``: what ``output`` belongs to (default: the judge and ``options``); a file of another
      job is refused (`JobError`), ``restart=True`` empties it first.
    """
    _ensure_ray(ray_init)
    start = time.perf_counter()
    options = options or JudgeOptions()
    with ResultWriter(output, job or _stamp(judge, options), restart=restart) as writer:
        return _stream(
            dataset,
            writer,
            judge=judge,
            judge_kwargs=judge_kwargs,
            options=options,
            num_actors=num_actors,
            num_gpus_per_actor=num_gpus_per_actor,
            num_cpus_per_actor=num_cpus_per_actor,
            batch_size=batch_size,
            id_column=id_column,
            keyed=False,
            base_dir=None,
            no_reference=False,
            progress=progress,
            on_line=on_line,
            skipped=len(writer.done),
            start=start,
        )


def _file_rows(records: list[Record]) -> Iterator[dict[str, str]]:
    for r in records:
        yield {_KEY: r.key, _RECORD: json.dumps(r.raw, ensure_ascii=False)}


def judge_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    judge: JudgeSpec = None,
    judge_kwargs: Mapping[str, Any] | None = None,
    options: JudgeOptions | None = None,
    num_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    num_cpus_per_actor: float = 1.0,
    batch_size: int = 32,
    no_reference: bool = False,
    progress: bool = False,
    ray_init: Mapping[str, Any] | None = None,
    job: JobStamp | None = None,
    restart: bool = False,
) -> RayJudgeSummary:
    """`judge_dataset` for a JSONL file, keyed like ``judgelm judge`` (id, else ``line-N``), with
    the same output ownership (``job``, ``restart``; the output must answer this input's records).

    Malformed lines are written as error lines by the driver (as ``judgelm judge`` does)."""
    ray = _ensure_ray(ray_init)
    start = time.perf_counter()
    options = options or JudgeOptions()
    records = list(read_samples(input, mode=options.mode))
    with ResultWriter(output, job or _stamp(judge, options), restart=restart, input_path=input) as writer:
        writer.claim(records, Path(input).name)
        skipped = sum(r.key in writer.done for r in records)
        bad = 0
        for r in records:
            if r.sample is None and r.key not in writer.done:
                print(f"judgelm: {r.error}", file=sys.stderr)
                writer.write(error_record(r), digest=r.digest)
                bad += 1
        todo = [r for r in records if r.sample is not None and r.key not in writer.done]
        if not todo:
            failed = sum(r.key in writer.failed for r in records)
            return RayJudgeSummary(str(writer.path), 0, 0, bad, skipped, 0, time.perf_counter() - start, failed)
        dataset = ray.data.from_items(list(_file_rows(todo)))
        summary = _stream(
            dataset,
            writer,
            judge=judge,
            judge_kwargs=judge_kwargs,
            options=options,
            num_actors=num_actors,
            num_gpus_per_actor=num_gpus_per_actor,
            num_cpus_per_actor=num_cpus_per_actor,
            batch_size=batch_size,
            id_column=None,
            keyed=True,
            base_dir=str(Path(input).resolve().parent),
            no_reference=no_reference,
            progress=progress,
            on_line=None,
            skipped=skipped,
            start=start,
            digests={r.key: r.digest for r in todo},
        )
        failed = sum(r.key in writer.failed for r in records)
    return RayJudgeSummary(
        summary.output,
        summary.written,
        summary.abstained,
        summary.errors + bad,
        skipped,
        summary.duplicates,
        summary.seconds,
        failed,
    )


def run_judge_command(args: argparse.Namespace) -> int:
    """``judgelm judge IN -o OUT --engine ray [--num-actors N]`` (the judge command's arguments)."""
    from judgelm.cli import EXIT_BAD_RECORDS, EXIT_OK
    from judgelm.cli.flags import job_stamp, judge_options, load_kwargs

    if not args.output:
        raise JudgeLMError("--engine ray writes results as they finish: give -o OUT.jsonl")
    judge_kwargs = {**load_kwargs(args), "abstain_threshold": getattr(args, "abstain_threshold", None)}
    summary = judge_file(
        args.input,
        args.output,
        judge=args.model,
        judge_kwargs=judge_kwargs,
        options=judge_options(args),
        num_actors=getattr(args, "num_actors", None),
        batch_size=args.batch_size,
        no_reference=args.no_reference,
        progress=not args.quiet,
        job=job_stamp(args),
        restart=getattr(args, "restart", False),
    )
    print(summary.line(), file=sys.stderr)
    return EXIT_BAD_RECORDS if summary.errors or summary.failed else EXIT_OK
