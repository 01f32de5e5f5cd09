"""`attestation` stands alone: an auditor can verify with it, cryptography and pydantic only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import attestation

PACKAGE = Path(attestation.__file__).parent
FORBIDDEN = ("lineage", "unlearning", "erasure", "lethe", "assets", "bench", "torch", "transformers", "peft", "neo4j",
             "dagster", "faiss", "presidio_analyzer", "securesystemslib", "numpy")


def test_no_module_imports_another_lethe_package_or_a_heavy_dependency():
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_importing_the_package_loads_nothing_forbidden():
    code = ("import sys, json, attestation; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                           text=True, cwd=PACKAGE.parent).stdout))
    assert not loaded & set(FORBIDDEN)


def test_public_names_exist_and_modules_stay_small():
    assert all(hasattr(attestation, name) for name in attestation.__all__)
    assert len(set(attestation.__all__)) == len(attestation.__all__)
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 300, f"{path.name} has grown past 300 lines: split it"
