"""JSON schemas for kubeconform from Kubernetes' own OpenAPI (swagger.json), offline.

kubeconform fetches its schemas from GitHub by default, which this project's machines cannot
reach; Kubernetes' swagger.json comes from the Go module proxy (module k8s.io/kubernetes, file
api/openapi-spec/swagger.json). For each kind the given manifests use, this writes
KIND-GROUP-VERSION.json (KIND-VERSION.json for the core group) in kubeconform's naming: the
kind's definition with every definition it references, objects closed (additionalProperties
false, so -strict catches misspelt fields) and Kubernetes' int-or-string and quantity formats
accepted as strings or numbers.

    python deploy/k8s_schemas.py SWAGGER_JSON OUT_DIR MANIFEST.yaml...
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _fix(node):
    if isinstance(node, dict):
        fmt = node.get("format")
        if fmt == "int-or-string":
            return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        out = {k: _fix(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return {"$ref": ref}
        return out
    if isinstance(node, list):
        return [_fix(v) for v in node]
    return node


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref[len("#/definitions/"):])
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _closure(defs: dict, name: str) -> dict:
    """The definition `name` and every definition it references, transitively."""
    todo, seen = [name], set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        found: set[str] = set()
        _refs(defs[n], found)
        todo.extend(found - seen)
    return {n: defs[n] for n in seen}


def main(swagger: Path, out: Path, manifests: list[Path]) -> int:
    import yaml
    wanted = set()
    for m in manifests:
        for doc in yaml.safe_load_all(m.read_text()):
            if doc:
                group, _, version = doc["apiVersion"].rpartition("/")
                wanted.add((doc["kind"], group.split(".")[0], version))
    spec = json.loads(swagger.read_text())
    defs = {name: _fix(d) for name, d in spec["definitions"].items()}
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    out.mkdir(parents=True, exist_ok=True)
    written = set()
    for name, d in spec["definitions"].items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            key = (gvk["kind"], gvk["group"].split(".")[0], gvk["version"])
            if key not in wanted:
                continue
            suffix = f"-{key[1]}-{key[2]}" if key[1] else f"-{key[2]}"
            schema = {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": _closure(defs, name),
                      "$ref": f"#/definitions/{name}"}
            (out / f"{key[0].lower()}{suffix}.json").write_text(json.dumps(schema))
            written.add(key)
    missing = wanted - written
    print(f"{len(written)} schemas in {out}" + (f"; no schema for {sorted(missing)}" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]))
