"""A vision judge (tiny open_clip tower + tiny Llama with the LLaMA tokenizer) through the public
`Judge` and the CLI: the same verdict alone or batched with samples of other image counts, bad
image files give error verdicts naming the sample and the image while the batch goes on,
`Judge.save_pretrained` / `from_pretrained`, and the engine choice (HF, never the fast path)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from greedy import assert_same_greedy, engine_logits_at, record_generate
from PIL import Image

from judgelm import Judge, Sample
from judgelm.cli import main
from judgelm.engine.hf import HFEngine
from judgelm.io import read_samples
from judgelm.vision import VisionJudgeModel
from judgelm.vision.testing import tiny_vision_judge


@pytest.fixture(scope="module")
def judge(llama_tokenizer):
    model, tok = tiny_vision_judge(llama_tokenizer, seed=1)
    return Judge(model, tok, name="tiny-vision")


@pytest.fixture(scope="module")
def judge_dir(judge, tmp_path_factory) -> Path:
    return judge.save_pretrained(tmp_path_factory.mktemp("vision-judge") / "j")


def test_vision_judges_run_on_the_hf_engine(judge):
    assert isinstance(judge.engine, HFEngine)
    assert "vision judge" in judge.engine.reason


def _png(color, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _samples() -> list[Sample]:
    red, blue, noise = _png((220, 30, 30)), _png((30, 30, 220)), io.BytesIO()
    Image.effect_noise((48, 48), 60).convert("RGB").save(noise, format="PNG")
    return [
        Sample("What color is it?", ("Red.", "Blue."), images=(red,), id="pair-1", mode="image_pairwise"),
        Sample("Same?", ("Yes, both red.", "No."), images=(red, blue), id="pair-2", mode="image_pairwise"),
        Sample("Describe.", ("Static noise.",), images=(noise.getvalue(),), id="single", mode="image_single"),
        Sample("Describe.", ("Noise.",), gold="Noise", images=(blue,), id="gold", mode="image_single"),
        Sample("2+2?", ("4", "5"), id="text-only", mode="pairwise"),
    ]


def _same(a, b, *, same_text: bool = True) -> None:
    """The same verdict: identical text and outcome, scores and distributions within 1e-5 (fp32).
    ``same_text=False``: the greedy tokens parted at a near-tie (checked by the caller), so the text
    and what was parsed from it may differ."""
    if not same_text:
        assert (a.sample_id, a.format) == (b.sample_id, b.format)
        return
    assert (a.sample_id, a.format, a.text, a.abstained, a.reason_code, a.winner) == (
        b.sample_id,
        b.format,
        b.text,
        b.abstained,
        b.reason_code,
        b.winner,
    )
    assert (a.scores is None) == (b.scores is None)
    if a.scores is not None:
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    assert (a.distributions is None) == (b.distributions is None)
    if a.distributions is not None:
        for da, db in zip(a.distributions, b.distributions, strict=True):
            assert da.probs == pytest.approx(db.probs, abs=1e-5)


@pytest.mark.parametrize(
    ("scoring", "kwargs"), [("text", {"explain": True, "max_new_tokens": 8}), ("logits", {})], ids=["text", "logits"]
)
def test_same_verdict_alone_or_batched(judge, scoring, kwargs, monkeypatch):
    samples = _samples()
    calls = record_generate(judge.engine, monkeypatch)
    batched = judge.judge(samples, scoring=scoring, swap=True, **kwargs)
    alone = [judge.judge([sample], scoring=scoring, swap=True, **kwargs)[0] for sample in samples]
    same_text = [True] * len(samples)
    if scoring == "text":  # greedy tokens batched vs alone: equal up to a near-tie (greedy.py)
        in_batch = {prompt: out for prompt, _, out in calls[0]}
        rows = [row for call in calls[1:] for row in call]
        want = [out for _, _, out in rows]
        got = [in_batch[prompt] for prompt, _, _ in rows]
        at = engine_logits_at(judge.engine, [list(p) for p, _, _ in rows], [imgs or [] for _, imgs, _ in rows])
        assert_same_greedy(got, want, at)
        same_text = [all(in_batch[p] == out for p, _, out in call) for call in calls[1:]]
    for verdict, one, same in zip(batched, alone, same_text, strict=True):
        _same(verdict, one, same_text=same)
    assert all(v.reason_code != "input_error" for v in batched)
    assert [v.format for v in batched[:4]] == ["image_pairwise"] * 2 + ["image_single"] * 2
    if scoring == "logits":
        assert all(v.distributions for v in batched)
    if scoring == "text":  # a random judge writes bytes, not verdicts: the text itself is compared
        assert all(len(v.text or "") >= 4 for v in batched)


def test_the_image_changes_the_verdict_distribution(judge):
    base = Sample("What color?", ("Red.", "Blue."), mode="image_pairwise", id="c")
    probs = [
        judge.judge([base.replace(images=(_png(c),))], scoring="logits")[0].distributions[0].probs
        for c in ((255, 0, 0), (0, 0, 255))
    ]
    assert probs[0] != pytest.approx(probs[1], rel=1e-3)


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = _png((0, 200, 0))
    noisy = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(noisy, format="PNG")
    files = {
        "good.png": good,
        "corrupt.png": good[:30] + b"\0" * 40 + good[70:],
        "truncated.png": noisy.getvalue()[: len(noisy.getvalue()) // 2],
        "huge.png": _huge_png(),
        "notes.png": b"just some text, not an image",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def _huge_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 99)) + chunk(b"IEND", b"")
    )


def test_bad_image_files_give_error_verdicts_and_the_batch_goes_on(judge, tmp_path: Path):
    files = _bad_files(tmp_path / "imgs")
    rows = [
        {
            "id": name.split(".")[0],
            "mode": "image_pairwise",
            "question": "Q?",
            "answers": ["a", "b"],
            "images": [f"imgs/{name}"],
        }
        for name in files
    ]
    rows.append(
        {"id": "missing", "mode": "image_single", "question": "Q?", "answers": ["a"], "images": ["imgs/nope.png"]}
    )
    rows.append(
        {
            "id": "second",
            "mode": "image_pairwise",
            "question": "Q?",
            "answers": ["a", "b"],
            "images": ["imgs/good.png", "imgs/notes.png"],
        }
    )
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    samples = [r.sample for r in read_samples(path)]
    verdicts = judge.judge(samples, scoring="text")
    by_id = {v.sample_id: v for v in verdicts}
    for bad in ("corrupt", "truncated", "huge", "notes", "missing"):
        v = by_id[bad]
        assert v.abstained and v.reason_code == "input_error", bad
        assert f"record {bad}" in v.reason and "images[0]" in v.reason
    assert by_id["second"].reason_code == "input_error" and "images[1]" in by_id["second"].reason
    assert "bomb" in by_id["huge"].reason or "longest side" in by_id["huge"].reason
    good = by_id["good"]
    assert good.reason_code != "input_error" and good.text is not None
    _same(good, judge.judge([samples[0]], scoring="text")[0])


def test_samples_with_the_wrong_number_of_image_slots_are_refused_alone(judge, tiny_judge):
    red = _png((220, 30, 30))
    good = Sample("What color is it?", ("Red.", "Blue."), images=(red,), id="good", mode="image_pairwise")
    batch = [
        Sample("What color?", ("Red.", "Blue."), images=(red,), id="text-format", mode="pairwise"),
        Sample("Look: <image>", ("Red.", "Blue."), id="typed-marker", mode="pairwise"),
        good,
    ]
    verdicts = {v.sample_id: v for v in judge.judge(batch, scoring="logits")}
    assert "use an image format" in verdicts["text-format"].reason
    assert "image slot" in verdicts["typed-marker"].reason and "record typed-marker" in verdicts["typed-marker"].reason
    assert all(verdicts[k].reason_code == "input_error" for k in ("text-format", "typed-marker"))
    _same(verdicts["good"], judge.judge([good], scoring="logits")[0])
    text_only = tiny_judge.judge([good], scoring="logits")[0]  # a judge without a vision tower
    assert text_only.reason_code == "input_error" and "no vision tower" in text_only.reason


def test_save_pretrained_and_from_pretrained(judge, judge_dir: Path):
    assert {"vision.safetensors", "model.safetensors", "judge.json", "tokenizer.json"} <= {
        p.name for p in judge_dir.iterdir()
    }
    assert not list(judge_dir.glob("*.bin")) and not list(judge_dir.glob("*.pt"))  # safetensors only
    loaded = Judge.from_pretrained(str(judge_dir), device="cpu")
    assert isinstance(loaded.model, VisionJudgeModel) and isinstance(loaded.engine, HFEngine)
    assert loaded.config.vision is not None and loaded.config.vision["projector"] == "mlp2x_gelu"
    samples = _samples()[:4]
    for scoring in ("text", "logits"):
        for a, b in zip(judge.judge(samples, scoring=scoring), loaded.judge(samples, scoring=scoring), strict=True):
            _same(a, b)


def test_cli_judges_a_jsonl_with_images_relative_to_the_file(judge, judge_dir: Path, tmp_path: Path, capsys):
    files = _bad_files(tmp_path / "data" / "imgs")
    rows = [
        {"id": "ok", "mode": "image_pairwise", "question": "Q?", "answers": ["a", "b"], "images": ["imgs/good.png"]},
        {"id": "bomb", "mode": "image_single", "question": "Q?", "answers": ["a"], "images": ["imgs/huge.png"]},
        {
            "id": "two",
            "mode": "image_pairwise",
            "question": "Q?",
            "answers": ["a", "b"],
            "images": ["imgs/good.png", "imgs/truncated.png"],
        },
        {"id": "text", "mode": "pairwise", "question": "2+2?", "answers": ["4", "5"]},
    ]
    src = tmp_path / "data" / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["judge", str(src), "--model", str(judge_dir), "--device", "cpu", "--quiet", "-o", str(out)]
    assert main(args) == 0
    lines = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(lines) == {"ok", "bomb", "two", "text"}
    for key, image in (("bomb", "images[0]"), ("two", "images[1]")):
        v = lines[key]["verdict"]
        assert v["abstained"] and v["reason_code"] == "input_error"
        assert f"record {key}" in v["reason"] and image in v["reason"]
    ok = lines["ok"]["verdict"]
    assert ok["reason_code"] != "input_error" and ok["distributions"]
    direct = judge.judge([Sample("Q?", ("a", "b"), images=(files["good.png"],), id="ok", mode="image_pairwise")])[0]
    assert ok["abstained"] == direct.abstained  # the CLI reads the JSONL's relative paths like `read_samples`
    assert ok["distributions"][0]["probs"] == pytest.approx(direct.distributions[0].probs, abs=2e-6)
    assert lines["text"]["verdict"]["reason_code"] != "input_error"
    assert "bad records: 0" in capsys.readouterr().err


def test_a_pickled_tower_file_is_refused_in_one_line(judge_dir: Path, tmp_path: Path, capsys):
    """judge.json may point the tower at a local file; a pickle there never runs, and the refusal
    is a one-line error (it was an uncaught UnpicklingError traceback)."""
    import os
    import pickle
    import shutil

    from safetensors.torch import load_file, save_file

    from judgelm.errors import ModelLoadError

    folder = tmp_path / "j"
    shutil.copytree(judge_dir, folder)
    weights = load_file(str(folder / "vision.safetensors"))  # no stored tower: judge.json's file is read
    save_file({k: v for k, v in weights.items() if k.startswith("projector.")}, str(folder / "vision.safetensors"))
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "tower.bin").write_bytes(pickle.dumps({"state_dict": Payload()}))
    config = json.loads((folder / "judge.json").read_text())
    config["vision"]["pretrained"] = "tower.bin"
    (folder / "judge.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="never runs pickled code"):
        Judge.from_pretrained(str(folder), device="cpu")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "question": "q", "answers": ["a", "b"]}) + "\n")
    capsys.readouterr()
    assert main(["judge", str(src), "--model", str(folder), "--device", "cpu", "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "Loading weights" not in line]
    assert len(err) == 1 and err[0].startswith("judgelm: error: ") and "tower.bin: refused" in err[0]
    assert not marker.exists()
