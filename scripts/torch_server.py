"""The plain PyTorch server that the load bench holds pipeserve against (performance issue, part 0).

Built the way the `transformers` guide "pipelines for a webserver" builds one: Starlette, one
asyncio queue, one loop that gathers what is queued within a short window (1 ms) into a batch
and runs sentence-transformers (PyTorch) on it, off the event loop. POST /embed takes pipeserve's
body (`{"inputs": "text"}`) and answers `[[...]]`, a normalized mean-pooled embedding.

It takes the pipeserve flags the bench's harness passes (`--model`, `--host`, `--port 0`,
`--json-logs`) and prints the same two JSON log lines (`listening` with the address, `ready`), so
benches/load.rs starts it like the real server:

    python3 -m venv .venv-golden
    .venv-golden/bin/pip install -r scripts/requirements-torch-server.txt
    BENCH_MODES=length,torch BENCH_TORCH_PYTHON=.venv-golden/bin/python cargo bench --bench load
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys


def log(message, **fields):
    print(json.dumps({"message": message, **fields}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a sentence-transformers model folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--json-logs", action="store_true", help="accepted for the harness; always JSON")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--window-ms", type=float, default=1.0, help="batching window (see --batcher)")
    parser.add_argument("--batcher", choices=["guide", "first"], default="guide",
                        help="guide: keep gathering while items arrive within the window of each other (the "
                             "guide's loop, full batches under load); first: close the window after the first item")
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                        help="bf16: model.to(torch.bfloat16), the one line a PyTorch user adds on an AMX or "
                             "AVX512-BF16 CPU")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args, _ = parser.parse_known_args()

    # The listening socket first (port 0: the kernel picks), so the harness learns the address.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a keep-alive answer, written as headers then
    # body, waits for the client's delayed ACK (~40 ms per request measured at c=1).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    host, port = sock.getsockname()
    log("listening", address=f"{host}:{port}")

    import torch
    import uvicorn
    from sentence_transformers import SentenceTransformer
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model, device="cpu")
    if args.dtype == "bf16":
        model = model.to(torch.bfloat16)
    model.eval()
    queue: asyncio.Queue = asyncio.Queue()

    def encode(texts):
        with torch.inference_mode():
            vectors = model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_tensor=True)
            return vectors.float().numpy()

    async def batcher():
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            deadline = loop.time() + args.window_ms / 1000
            while len(items) < args.max_batch_size:
                if args.batcher == "guide" and len(items) > 1:
                    # The guide's loop: wait up to the window for the next item after each one.
                    deadline = loop.time() + args.window_ms / 1000
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            texts = [text for text, _ in items]
            try:
                vectors = await loop.run_in_executor(None, encode, texts)
                for (_, future), vector in zip(items, vectors):
                    future.set_result(vector.tolist())
            except Exception as error:  # noqa: BLE001 - every waiter gets the failure
                for _, future in items:
                    future.set_exception(error)

    async def embed(request):
        body = await request.json()
        future = asyncio.get_running_loop().create_future()
        await queue.put((body["inputs"], future))
        return JSONResponse([await future])

    async def health(_request):
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = asyncio.get_running_loop().create_task(batcher())
        log("ready", threads=args.threads, torch=torch.__version__, dtype=args.dtype, batcher=args.batcher)
        yield
        task.cancel()

    app = Starlette(routes=[Route("/embed", embed, methods=["POST"]), Route("/health", health)],
                    lifespan=lifespan)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
