"""Exporting a trained run: ONNX, TorchScript and safetensors files with a model card.

May import: api and every layer below it. Never cli.
"""
