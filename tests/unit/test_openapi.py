"""The OpenAPI document: every operation shows its request and answer shapes."""

from __future__ import annotations

from comfy_gateway.app import create_app
from comfy_gateway.settings import Settings


def test_every_operation_documents_a_typed_answer(tmp_path):
    app = create_app(Settings(_env_file=None, data_dir=tmp_path))
    spec = app.openapi()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            content = [c for r in ok.values() for c in r.get("content", {}).values()]
            bodiless = method == "head" or set(ok) == {"204"}
            if not any(c.get("schema", {}).get("$ref") or c.get("schema", {}).get("type") == "object"
                       or c.get("schema", {}).get("format") == "binary"  # a file download
                       for c in content) and "text/event-stream" not in str(ok) and not bodiless:
                untyped.append(f"{method.upper()} {path}")
    assert untyped == []
    upload = spec["paths"]["/api/remove-background"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["imageFile"]
    assert "/metrics" not in spec["paths"] and "/dashboard" not in spec["paths"]
