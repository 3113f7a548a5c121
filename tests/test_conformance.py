"""The ONNX backend node tests as a tracked suite: expected status is data
(tests/conformance/expected_<target>_<suite>.toml: every listed case is a gap with its reason
or an excluded exotic-type case; every other case must pass)."""

from __future__ import annotations

import os
import pathlib
import tomllib

import pytest

from conftest import require_tools
from dgc import conformance as conf

HERE = pathlib.Path(__file__).parent / "conformance"


def _expected(target: str, suite: str) -> dict:
    path = HERE / f"expected_{target}_{suite}.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {"excluded": {}, "gaps": {}}


@pytest.fixture(scope="module")
def host_results():
    return {r.name: r for r in conf.run_cases(conf.core_cases(), "host", jobs=os.cpu_count() or 1)}


def test_core_count():
    assert len(conf.core_cases()) == 642


@pytest.mark.parametrize("name", [c.name for c in conf.core_cases()])
def test_core_host(name, host_results):
    exp = _expected("host", "core")
    result = host_results[name]
    listed = exp["excluded"].get(name) or exp["gaps"].get(name)
    if listed:
        assert result.status != "pass", f"{name} passes now: remove it from the expected table"
        pytest.xfail(listed)
    assert result.status == "pass", f"{result.status}: {result.detail}"


def test_core_host_pass_rate(host_results):
    exp = _expected("host", "core")
    counted = [r for n, r in host_results.items() if n not in exp["excluded"]]
    rate = sum(r.status == "pass" for r in counted) / len(counted)
    print(f"core on host: {sum(r.status == 'pass' for r in counted)} / {len(counted)} = {rate:.1%}")
    assert rate >= 0.95


@pytest.mark.slow
def test_core_cortex_m7_pass_rate():
    require_tools("cortex-m7")
    exp = _expected("host", "core")
    cases = [c for c in conf.core_cases() if c.name not in exp["excluded"]]
    results = conf.run_cases(cases, "cortex-m7", jobs=os.cpu_count() or 1)
    rate = sum(r.status == "pass" for r in results) / len(results)
    print(f"core on cortex-m7: {sum(r.status == 'pass' for r in results)} / {len(results)} = {rate:.1%}")
    assert rate >= 0.90


@pytest.mark.slow
@pytest.mark.parametrize("name", conf.light_models())
def test_light_model_zoo(name):
    """The onnx wheel's opset-9 model-zoo graphs against their shipped reference outputs."""
    result = conf.run_case(conf.light_case(name), "host")
    assert result.status == "pass", result.detail
