"""The ground floor for files: atomic writes, the bounded safetensors header reader, checkpoints."""
