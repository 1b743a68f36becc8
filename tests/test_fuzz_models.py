"""≥100 malformed ONNX models: each ends in a tinytvm error naming the culprit."""

import pytest

import tinytvm
from fuzz_onnx import corpus

CASES = list(corpus())


def test_corpus_is_large_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize("case,model,culprits", CASES, ids=[c[0] for c in CASES])
def test_malformed_model_gets_a_clear_error(case, model, culprits):
    with pytest.raises(tinytvm.TinyTVMError) as err:
        tinytvm.build(model, target="stm32f746")
    message = str(err.value)
    assert any(c in message for c in culprits), f"{case}: message does not name {culprits}: {message}"
