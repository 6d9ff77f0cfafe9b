"""Policies on the core contract: the VLA and its heads, SFT, checkpoints, ONNX, the success classifier."""
