"""Model input/output: training checkpoints, runs of ``rosenblatt train``, PyTorch weights in, ONNX out."""

from rosenblatt.io.checkpoint import load_checkpoint, save_checkpoint
from rosenblatt.io.onnx_export import export_onnx
from rosenblatt.io.run import load_run
from rosenblatt.io.torch_weights import from_torch_state_dict

__all__ = ["export_onnx", "from_torch_state_dict", "load_checkpoint", "load_run", "save_checkpoint"]
