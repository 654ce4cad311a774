"""The committed generated gRPC code is exactly what scripts/gen_proto.py makes from proto/."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "engine" / "grpc" / "gen"


def _script():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_not_stale(tmp_path):
    """Regenerating into a temp dir gives the committed files, version comments aside."""
    gen = _script()
    written = gen.generate(tmp_path)
    assert written, "the script wrote nothing"
    for path in written:
        committed = GEN / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python scripts/gen_proto.py"
        assert gen.normalise(committed.read_text()) == gen.normalise(path.read_text()), (
            f"{committed.relative_to(ROOT)} is stale: run python scripts/gen_proto.py and commit"
        )
    committed_files = {p.relative_to(GEN) for p in GEN.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert committed_files == {p.relative_to(tmp_path) for p in written}


def test_generated_imports_use_the_package_path(tmp_path):
    """protoc's 'from verdict.v1 import' is rewritten so the code imports as engine.grpc.gen."""
    gen = _script()
    gen.generate(tmp_path)
    grpc_code = (tmp_path / "verdict" / "v1" / "decision_pb2_grpc.py").read_text()
    assert "from engine.grpc.gen.verdict.v1 import decision_pb2" in grpc_code
    assert "\nfrom verdict." not in grpc_code


def test_normalise_only_drops_version_lines():
    """The staleness comparison ignores generator versions but still sees a changed field."""
    gen = _script()
    a = "# Protobuf Python Version: 7.35.1\nx = 1\n_runtime_version.ValidateProtobufRuntimeVersion(\n    7,\n    35,\n)\n"
    b = "# Protobuf Python Version: 7.36.0\nx = 1\n_runtime_version.ValidateProtobufRuntimeVersion(\n    7,\n    36,\n)\n"
    assert gen.normalise(a) == gen.normalise(b)
    assert gen.normalise(a) != gen.normalise(a.replace("x = 1", "x = 2"))
