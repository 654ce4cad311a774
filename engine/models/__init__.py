"""Models: verified loading of model directories, feature encoding, ONNX scoring, reasons, the inventory.

Never imports an edge (grpc, commands, batch, console, cli, app): docs/architecture.md.
"""
