#!/usr/bin/env python3
"""A minimal OTLP trace receiver for tests/tracing.rs: gRPC TraceService/Export and HTTP POST
/v1/traces (protobuf), both on free loopback ports.

Usage: otlp_receiver.py OUT_FILE
Prints one JSON line {"grpc": PORT, "http": PORT} on stdout once both listen, then appends one JSON
line per received span to OUT_FILE (and one {"export": TRANSPORT, "spans": N} line per export call,
so an empty export is seen too). Runs until killed, or 300 s at most.
Needs `opentelemetry-proto` and `grpcio` (scripts/test.sh installs them into .venv).
"""

import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LIFETIME_S = 300
LOCK = threading.Lock()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def record(out, request, transport):
    lines = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                lines.append({
                    "transport": transport,
                    "name": s.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "kind": s.kind,
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": attributes(s.attributes),
                    "links": [{"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex()} for l in s.links],
                    "resource": resource,
                })
    with LOCK, open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps({"export": transport, "spans": len(lines)}) + "\n")
        for line in lines:
            f.write(json.dumps(line) + "\n")


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        record(self.out, request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


def http_handler(out):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            record(out, request, "http")
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    return Handler


def main():
    out = sys.argv[1]
    open(out, "w").close()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(out), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), http_handler(out))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(json.dumps({"grpc": grpc_port, "http": httpd.server_address[1]}), flush=True)
    # Bounded: a test that forgets to stop the receiver does not leave it running for ever.
    time.sleep(LIFETIME_S)
    server.stop(0)
    httpd.shutdown()


if __name__ == "__main__":
    main()
