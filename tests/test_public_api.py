import judgelm


def test_all_is_curated_and_importable():
    expected = {
        "Discussion",
        "FormatError",
        "Formatter",
        "InvalidSampleError",
        "Judge",
        "JudgeLMError",
        "MissingDependencyError",
        "ModelLoadError",
        "Preference",
        "Prompt",
        "PromptTooLongError",
        "Provenance",
        "Sample",
        "ScoreDistribution",
        "ScoringError",
        "Truncation",
        "Turn",
        "Verdict",
        "VerdictSpec",
        "__version__",
        "get_format",
        "list_formats",
        "parse_scores",
        "read_samples",
        "register_format",
        "write_results",
    }
    assert set(judgelm.__all__) == expected
    for name in judgelm.__all__:
        assert getattr(judgelm, name) is not None


def test_error_hierarchy():
    for name in (
        "FormatError",
        "InvalidSampleError",
        "MissingDependencyError",
        "ModelLoadError",
        "PromptTooLongError",
        "ScoringError",
    ):
        assert issubclass(getattr(judgelm, name), judgelm.JudgeLMError)
    e = judgelm.InvalidSampleError("must be a list", field="answers", record="line 3")
    assert "line 3" in str(e) and "'answers'" in str(e)
