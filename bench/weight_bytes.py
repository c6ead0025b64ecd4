"""Bytes of weights one decoded token reads, from the GGUF tensor table (PyPI gguf as the independent reader).

Every weight matrix is multiplied once per token, so all tensor bytes count, except the token embedding: a lookup
reads one row of it, unless the model has no separate `output.weight` and ties the output projection to the
embedding (SmolLM2 does), in which case the logits matmul reads all of it.
Prints one JSON line: {"file_bytes", "tensor_bytes", "per_token_bytes", "tied_embedding"}.

    python weight_bytes.py MODEL.gguf
"""

import json
import os
import sys

from gguf import GGUFReader


def main() -> None:
    path = sys.argv[1]
    reader = GGUFReader(path)
    total = 0
    per_token = 0
    embd = None
    names = set()
    for t in reader.tensors:
        n = int(t.n_bytes)
        names.add(t.name)
        total += n
        if t.name == "token_embd.weight":
            embd = t
        else:
            per_token += n
    tied = "output.weight" not in names
    if embd is not None:
        if tied:
            per_token += int(embd.n_bytes)
        else:
            # One row: the tensor's bytes divided by its row count (shape[1] in GGUF order is the vocab size).
            rows = int(embd.shape[1]) if len(embd.shape) > 1 else 1
            per_token += int(embd.n_bytes) // max(rows, 1)
    print(json.dumps({"file_bytes": os.path.getsize(path), "tensor_bytes": total, "per_token_bytes": per_token,
                      "tied_embedding": tied}))


if __name__ == "__main__":
    main()
