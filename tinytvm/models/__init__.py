"""Small model builders (ONNX), used by the tests, the examples and the benchmarks."""

from .small_cnn import OnnxBuilder, mbv2_tiny, resnet_tiny, ts_cnn

__all__ = ["OnnxBuilder", "mbv2_tiny", "resnet_tiny", "ts_cnn"]
