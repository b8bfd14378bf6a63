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


def test_importing_judgelm_makes_openmp_wait_passively_unless_told():
    """(judgelm/cpu_threads.py: spinning OpenMP threads starve each other on a shared machine.)"""
    import os
    import subprocess
    import sys

    code = "import os, judgelm, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = lambda **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert run() == "PASSIVE" and run(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
