import json

import pytest

from fcn.model import runtime


@pytest.mark.parametrize(
    "config, chief",
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_only_the_chief_writes(monkeypatch, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert runtime.is_chief() is chief


SAPPHIRE_RAPIDS_FLAGS = "fpu vme sse2 avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
EPYC_ROME_FLAGS = "fpu vme sse2 avx avx2 fma bmi2 sha_ni"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (SAPPHIRE_RAPIDS_FLAGS, "mixed_bfloat16"),
        ("sse2 avx2 amx_bf16 amx_tile", "mixed_bfloat16"),  # AMX-BF16 alone
        # Cooper Lake / Zen 4: AVX512-BF16 without AMX, where bfloat16 measured slower than float32.
        ("sse2 avx2 avx512f avx512_bf16", "float32"),
        (EPYC_ROME_FLAGS, "float32"),
        ("sse2 avx2 avx512f avx512_vnni amx_int8", "float32"),  # AVX-512 and AMX without bf16
        ("", "float32"),  # no flags known (macOS, Windows, unreadable /proc/cpuinfo)
    ],
)
def test_flag_rule_on_cpu_follows_amx_bf16(flags, expected):
    """The rule auto falls back on when the probe is switched off (FCN_PRECISION_PROBE=0)."""
    assert runtime.auto_precision([], flags.split()) == expected
    # GPU rule unchanged: tensor cores win whatever the CPU; older GPUs leave the choice to the CPU.
    assert runtime.auto_precision([(8, 0)], flags.split()) == "mixed_float16"
    assert runtime.auto_precision([(6, 1)], flags.split()) == expected


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    from fcn.core.errors import InputError

    with pytest.raises(InputError, match="TF_CONFIG"):
        runtime.make_strategy("multiworker")
