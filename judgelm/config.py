"""``judge.json``: what a saved judge knows about itself, stored beside its weights.

Written by training (`judgelm.train`) and calibration (`judgelm.calibration`); read by
`Judge.from_pretrained`. Unknown keys are kept, so newer files load in older versions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from judgelm.formats.base import DEFAULT_SCORE_VALUES

__all__ = ["CONFIG_FILE", "JudgeConfig"]

CONFIG_FILE = "judge.json"


@dataclass(frozen=True)
class JudgeConfig:
    """Judge settings saved with the weights.

    - ``score_values``: the score strings the verdict grammar allows per slot.
    - ``calibration``: a fitted calibration (see `judgelm.calibration`), e.g.
      ``{"temperature": 1.3, "method": "temperature", "fitted_on": "...", "metrics": {...}}``.
    - ``training``: how the judge was trained (recipe, data, swap/reference probabilities).
    - ``rubric`` / ``scale``: the judge's own rubric and verdict scale, used for samples that set
      none (see `Sample.rubric`, `Sample.scale`; e.g. ``"1-5"`` for a judge fine-tuned on 1-5).
    """

    score_values: tuple[str, ...] = DEFAULT_SCORE_VALUES
    calibration: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    vision: dict[str, Any] | None = None
    rubric: str | dict[str, str] | None = None
    scale: str | list[str] | dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score_range(self) -> tuple[float, float]:
        """(lowest, highest) of ``score_values``: what rewards are normalised against."""
        values = [float(v) for v in self.score_values]
        return min(values), max(values)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        data = asdict(self)
        extra = data.pop("extra")
        data["score_values"] = list(self.score_values)
        path.write_text(json.dumps({**extra, **data}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> JudgeConfig | None:
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "score_values" in kwargs:
            kwargs["score_values"] = tuple(str(v) for v in kwargs["score_values"])
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def locate(cls, name_or_path: str | None, revision: str | None = None) -> JudgeConfig | None:
        """The ``judge.json`` of a local folder or of a Hugging Face Hub repo (downloaded, or read
        from the cache when offline). No file, no network or an unknown name all give ``None``:
        loading the model reports those."""
        from judgelm.engine.loading import DEMO_ALIASES
        from judgelm.errors import ModelLoadError
        from judgelm.hub import hub_file, resolve_source

        if not name_or_path or name_or_path.lower() in DEMO_ALIASES:
            return None
        try:
            source = resolve_source(name_or_path, revision)
        except ModelLoadError:
            return None
        path = hub_file(source, CONFIG_FILE, revision)
        return cls.load(path.parent) if path is not None else None

    def replace(self, **changes: Any) -> JudgeConfig:
        return JudgeConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})
