"""The board service's API described as OpenAPI 3.0 (served at /api/v1/openapi.json)."""
from __future__ import annotations

_ERR = {"description": "refused: {\"error\": \"what was wrong\"}",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_AUTH = [{"bearer": []}]


def _ok(desc: str, schema: str | None = None, ctype: str = "application/json") -> dict:
    r: dict = {"description": desc}
    if schema:
        r["content"] = {ctype: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return r


def openapi(version: str) -> dict:
    """The API description (paths, schemas, the bearer scheme)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "pynq-codesign board service", "version": version,
                 "description": "Upload deployment packages, queue benchmarks on the board "
                                "(jobs run one at a time, in order), follow every measured "
                                "sample live. Every figure carries its source: measured "
                                "(a real board) or simulated (the simulated board)."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"},
                                         "status": {"type": "integer"}}},
                "Board": {"type": "object", "properties": {
                    "board": {"type": "string"}, "device": {"type": "string"},
                    "part": {"type": "string"}, "clock_mhz": {"type": "number"},
                    "pynq_version": {"type": "string", "nullable": True},
                    "simulated": {"type": "boolean"}, "source": {"type": "string"},
                    "loaded": {"type": "object", "nullable": True},
                    "service_version": {"type": "string"}, "boot_id": {"type": "string"}}},
                "Design": {"type": "object", "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"},
                    "hardware_id": {"type": "string"}, "device": {"type": "string"}}},
                "BenchRequest": {"type": "object", "properties": {
                    "frames": {"type": "integer", "minimum": 1, "default": 50},
                    "warmup": {"type": "integer", "minimum": 0, "default": 2},
                    "images": {"type": "string", "nullable": True,
                               "description": "a folder of the board's images folder; "
                                              "null: the package's golden inputs"}}},
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"}, "design_id": {"type": "string"},
                    "state": {"type": "string",
                              "enum": ["queued", "running", "done", "failed"]},
                    "progress": {"type": "object"},
                    "record": {"type": "object", "nullable": True,
                               "description": "the QoS record (pynq_codesign.qos)"},
                    "error": {"type": "string", "nullable": True}}},
            }},
        "paths": {
            "/api/v1/board": {"get": {"summary": "the board: part, clock, loaded design",
                                      "responses": {"200": _ok("board facts", "Board")}}},
            "/api/v1/designs": {
                "get": {"summary": "uploaded designs",
                        "responses": {"200": _ok("the designs")}},
                "post": {"summary": "upload a deployment package (tar.gz)",
                         "security": _AUTH,
                         "requestBody": {"content": {"multipart/form-data": {"schema": {
                             "type": "object", "properties": {
                                 "package": {"type": "string", "format": "binary"}}}}}},
                         "responses": {"201": _ok("stored", "Design"), "400": _ERR,
                                       "401": _ERR, "413": _ERR}}},
            "/api/v1/designs/{id}": {"get": {
                "summary": "one design", "parameters": [_path("id")],
                "responses": {"200": _ok("the design", "Design"), "404": _ERR}}},
            "/api/v1/designs/{id}/bench": {"post": {
                "summary": "queue a benchmark of a design", "security": _AUTH,
                "parameters": [_path("id")],
                "requestBody": {"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/BenchRequest"}}}},
                "responses": {"202": _ok("queued", "Job"), "400": _ERR, "401": _ERR,
                              "404": _ERR}}},
            "/api/v1/jobs": {"get": {"summary": "every job, oldest first",
                                     "responses": {"200": _ok("jobs")}}},
            "/api/v1/jobs/{id}": {"get": {
                "summary": "a job: state, progress, QoS record when done",
                "parameters": [_path("id")],
                "responses": {"200": _ok("the job", "Job"), "404": _ERR}}},
            "/api/v1/qos/stream": {"get": {
                "summary": "Server-Sent Events: every sample as measured (frame, power, "
                           "job, result events; id = boot id-sequence; reconnect with "
                           "Last-Event-ID to miss nothing)",
                "parameters": [{"name": "Last-Event-ID", "in": "header", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "text/event-stream"},
                              "429": _ERR}}},
            "/api/v1/openapi.json": {"get": {"summary": "this description",
                                             "responses": {"200": _ok("OpenAPI 3")}}},
            "/": {"get": {"summary": "the dashboard (live charts of the stream)",
                          "responses": {"200": {"description": "text/html"}}}},
        },
    }


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
