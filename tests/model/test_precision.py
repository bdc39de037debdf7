"""fcn.model.precision: --precision auto by a cached measurement, with a flag prior and an off switch."""

import json

import pytest

from fcn.model import precision
from fcn.model.precision import PROBE_ENV, choose_precision

ZEN4_FLAGS = ["fpu", "sse2", "avx2", "fma", "avx512f", "avx512_bf16"]  # bfloat16 in hardware, no AMX
SAPPHIRE_RAPIDS_FLAGS = ["sse2", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
AVX2_FLAGS = ["fpu", "sse2", "avx", "avx2", "fma", "bmi2"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache; the probe runs only where a test allows it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(PROBE_ENV, raising=False)
    monkeypatch.setattr(precision, "_machine_key", lambda: "CPU A | 2 cores | tensorflow 9.9")
    return tmp_path / "cache" / "fcn" / "precision.json"


class Probe:
    def __init__(self, speedup):
        self.speedup, self.calls = speedup, 0

    def __call__(self):
        self.calls += 1
        return self.speedup


def never():
    raise AssertionError("the probe must not run here")


@pytest.mark.parametrize("speedup, policy", [(1.92, "mixed_bfloat16"), (0.8, "float32"), (1.05, "float32")])
def test_auto_follows_the_measured_speed_on_a_bf16_cpu(private_cache, speedup, policy):
    choice = choose_precision("auto", flags=ZEN4_FLAGS, gpu_capabilities=[], probe=Probe(speedup))
    assert choice.policy == policy
    assert f"{speedup:.2f}x" in choice.reason and "measured now" in choice.reason


def test_the_answer_is_cached_once_per_machine_and_reused(private_cache, monkeypatch):
    probe = Probe(1.9)
    first = choose_precision("auto", flags=ZEN4_FLAGS, gpu_capabilities=[], probe=probe)
    again = choose_precision("auto", flags=ZEN4_FLAGS, gpu_capabilities=[], probe=probe)
    assert probe.calls == 1 and first.policy == again.policy == "mixed_bfloat16"
    assert "cached in" in again.reason and "measured now" not in again.reason
    stored = json.loads(private_cache.read_text())
    assert stored["CPU A | 2 cores | tensorflow 9.9"]["policy"] == "mixed_bfloat16"
    # Another machine (or TensorFlow version) measures again and keeps both answers.
    monkeypatch.setattr(precision, "_machine_key", lambda: "CPU A | 2 cores | tensorflow 10.0")
    slower = Probe(0.7)
    assert choose_precision("auto", flags=ZEN4_FLAGS, gpu_capabilities=[], probe=slower).policy == "float32"
    assert slower.calls == 1 and len(json.loads(private_cache.read_text())) == 2


def test_an_unreadable_cache_is_measured_again(private_cache):
    private_cache.parent.mkdir(parents=True)
    private_cache.write_text("{not json")
    probe = Probe(2.0)
    assert choose_precision("auto", flags=ZEN4_FLAGS, gpu_capabilities=[], probe=probe).policy == "mixed_bfloat16"
    assert probe.calls == 1 and json.loads(private_cache.read_text())


def test_without_bf16_instructions_float32_is_certain_and_not_measured(private_cache):
    choice = choose_precision("auto", flags=AVX2_FLAGS, gpu_capabilities=[], probe=never)
    assert choice.policy == "float32" and "not measured" in choice.reason
    assert not private_cache.exists()


@pytest.mark.parametrize("flags, policy", [(ZEN4_FLAGS, "float32"), (SAPPHIRE_RAPIDS_FLAGS, "mixed_bfloat16")])
def test_the_environment_switch_turns_the_probe_off(monkeypatch, flags, policy):
    monkeypatch.setenv(PROBE_ENV, "0")
    choice = choose_precision("auto", flags=flags, gpu_capabilities=[], probe=never)
    assert choice.policy == policy and PROBE_ENV in choice.reason


def test_explicit_policies_and_tensor_core_gpus_need_no_probe():
    for name in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert choose_precision(name, flags=ZEN4_FLAGS, probe=never).policy == name
    gpu = choose_precision("auto", flags=ZEN4_FLAGS, gpu_capabilities=[(8, 0)], probe=never)
    assert gpu.policy == "mixed_float16" and "8.0" in gpu.reason
    with pytest.raises(ValueError, match="float32"):
        choose_precision("half")


def test_cpu_flags_and_model_are_read_from_cpuinfo_text():
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu AVX2 avx512_bf16\n\nprocessor\t: 1\n"
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert precision.cpu_model(cpuinfo) == "AMD EPYC 9R14"
    arm = precision.cpu_flags("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # ARM: "Features"
    assert arm == {"fp", "asimd", "bf16"} and precision._has_native_bf16(arm)
    assert precision.cpu_flags("") == frozenset()


def test_on_this_machine_the_rule_agrees_with_a_measurement(monkeypatch):
    """Where auto skips the probe (no bf16 instructions), a short probe must find bfloat16 slower."""
    pytest.importorskip("tensorflow")
    flags = precision.cpu_flags()
    if precision._has_native_bf16(flags):
        pytest.skip("this CPU has bfloat16 instructions: auto measures (tested with faked probes)")
    assert choose_precision("auto", flags=flags, gpu_capabilities=[], probe=never).policy == "float32"
    speedup = precision._probe_bf16_speedup(size=16, channels=32, layers=2, budget_s=0.05)
    assert speedup < precision.BF16_MIN_SPEEDUP  # bench/precision_speed.py measures ~0.1x here


SAPPHIRE_RAPIDS_CPUINFO_FLAGS = "fpu vme sse2 avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
EPYC_ROME_FLAGS = "fpu vme sse2 avx avx2 fma bmi2 sha_ni"


@pytest.mark.parametrize(
    "flags, expected",
    [
        (SAPPHIRE_RAPIDS_CPUINFO_FLAGS, "mixed_bfloat16"),
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
    assert precision._auto_precision([], flags.split()) == expected
    # GPU rule unchanged: tensor cores win whatever the CPU; older GPUs leave the choice to the CPU.
    assert precision._auto_precision([(8, 0)], flags.split()) == "mixed_float16"
    assert precision._auto_precision([(6, 1)], flags.split()) == expected
