"""Deployable quantization: fake quant (INT8/INT4-weight/FP16), calibration, QAT, and Q/DQ ONNX export."""
