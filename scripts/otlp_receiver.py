"""A small OTLP/HTTP receiver for the test suite (no collector needed).

POST /v1/traces, /v1/metrics, /v1/logs: protobuf or JSON, optionally gzip;
answers 200 with an empty Export*ServiceResponse, 400 for a payload that
does not decode (not retryable in OTLP).
GET /debug/spans, /debug/metrics: everything received, flattened to JSON.
Prints "LISTENING <port>" once bound (--port 0: a free port).
"""
import argparse
import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as traces

ROUTES = {
    "/v1/traces": (traces.ExportTraceServiceRequest, traces.ExportTraceServiceResponse),
    "/v1/metrics": (metrics.ExportMetricsServiceRequest, metrics.ExportMetricsServiceResponse),
    "/v1/logs": (logs.ExportLogsServiceRequest, logs.ExportLogsServiceResponse),
}
LOCK = threading.Lock()
RECEIVED = {path: [] for path in ROUTES}
HEX_IDS = {"traceId", "spanId", "parentSpanId"}


def ids_to_base64(o):
    # OTLP/JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64.
    if isinstance(o, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in HEX_IDS and isinstance(v, str) else ids_to_base64(v)
            for k, v in o.items()
        }
    if isinstance(o, list):
        return [ids_to_base64(x) for x in o]
    return o


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def spans():
    out = []
    for request in RECEIVED["/v1/traces"]:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append({
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "kind": s.kind,
                        "status": s.status.code,
                        "attributes": attributes(s.attributes),
                        "events": [{"name": e.name, "attributes": attributes(e.attributes)} for e in s.events],
                        "scope": ss.scope.name,
                        "resource": attributes(rs.resource.attributes),
                        "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
                    })
    return out


def metric_points():
    out = []
    for request in RECEIVED["/v1/metrics"]:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    points = []
                    for p in getattr(m, kind).data_points:
                        point = {"attributes": attributes(p.attributes)}
                        if kind == "histogram":
                            point.update(count=p.count, sum=p.sum)
                        else:
                            point["value"] = getattr(p, p.WhichOneof("value"))
                        points.append(point)
                    out.append({"name": m.name, "type": kind, "unit": m.unit, "scope": sm.scope.name,
                                "resource": attributes(rm.resource.attributes), "points": points})
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body=b"", content_type="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path not in ROUTES:
            return self.reply(404)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request_type, response_type = ROUTES[self.path]
        request = request_type()
        is_json = self.headers.get("Content-Type", "").startswith("application/json")
        try:
            if is_json:
                json_format.ParseDict(ids_to_base64(json.loads(body)), request)
            else:
                request.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the sender's
            return self.reply(400, str(e).encode(), "text/plain")
        with LOCK:
            RECEIVED[self.path].append(request)
        if is_json:
            self.reply(200, json_format.MessageToJson(response_type()).encode())
        else:
            self.reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def do_GET(self):
        view = {"/debug/spans": spans, "/debug/metrics": metric_points}.get(self.path)
        if view is None:
            return self.reply(404)
        with LOCK:
            body = json.dumps(view()).encode()
        self.reply(200, body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()
