"""Single-precision matmul peak through NumPy's BLAS (OpenBLAS in the PyPI wheel), as a reference
next to candle's own matmul (`cargo bench --bench matmul`).

    pip install --target .tools/py numpy==2.1.3
    PYTHONPATH=.tools/py OPENBLAS_NUM_THREADS=2 python3 scripts/blas_peak.py
"""
import time

import numpy as np

# Square, then MiniLM's shapes at 32 x 128 tokens: QKV/out projection, FFN up, FFN down.
SHAPES = [(2048, 2048, 2048), (4096, 384, 384), (4096, 384, 1536), (4096, 1536, 384)]
config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
print(f"numpy {np.__version__}, BLAS {config.get('name')} {config.get('version')}\n")
print("| dtype | m × k × n | GFLOP/s |")
print("|---|---|---:|")
for m, k, n in SHAPES:
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(n, k).astype(np.float32).T
    a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0 or runs < 3:
        a @ b
        runs += 1
    print(f"| f32 | {m} × {k} × {n} | {2 * m * k * n * runs / (time.perf_counter() - start) / 1e9:.1f} |")
