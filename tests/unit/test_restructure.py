"""scripts/restructure.py: every kind of reference to a moved module is rewritten, once, and the
project tree holds none of the old ones (the check the static gate runs)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT / "scripts" / "restructure.py"
MOVES = {
    "engine/satisfy.py": "engine/policy/satisfy.py",
    "engine/loader.py": "engine/policy/loader.py",
    "engine/service.py": "engine/runtime/service.py",
    "engine/models.py": "engine/models/runtime.py",
    "engine/explain.py": "engine/models/explain.py",
}


SYMBOLS = {
    ("engine.grpc.server", "serve"): "engine.app",
    ("engine.grpc.server", "_run_one"): "engine.app",
    ("engine.policy.satisfy", "show"): "engine.expr.vocabulary",
}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("restructure", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["restructure"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rewriter(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A rewriter of the moves and moved names above over an empty tree."""
    return _script().Rewriter(MOVES, tmp_path_factory.mktemp("tree"), SYMBOLS)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("from engine.loader import load_policies\n", "from engine.policy.loader import load_policies\n"),
        ("    from engine.service import Decider, load_decider\n", "    from engine.runtime.service import Decider, load_decider\n"),
        ("import engine.loader as loader_module\n", "import engine.policy.loader as loader_module\n"),
        ("from engine import loader\n", "from engine.policy import loader\n"),
        ("from engine import errors, loader as L, service\n", "from engine import errors\nfrom engine.policy import loader as L\nfrom engine.runtime import service\n"),
        ("from engine import models\n", "from engine.models import runtime as models\n"),
        ("from engine import (\n    explain,\n    models,\n)\n", "from engine.models import explain, runtime as models\n"),
        ('mock.patch("engine.service.time.monotonic")\n', 'mock.patch("engine.runtime.service.time.monotonic")\n'),
        ('structlog.get_logger("engine.loader")\n', 'structlog.get_logger("engine.policy.loader")\n'),
        ("see ``engine.models.Model`` and engine/models.py, engine/loader.py.\n", "see ``engine.models.runtime.Model`` and engine/models/runtime.py, engine/policy/loader.py.\n"),
        ("from engine.models import FeatureSpec\n", "from engine.models.runtime import FeatureSpec\n"),
        ("from engine.grpc.server import serve, start_server\n", "from engine.app import serve\nfrom engine.grpc.server import start_server\n"),
        ('mock.patch("engine.grpc.server._run_one")\n', 'mock.patch("engine.app._run_one")\n'),
        ("from engine.satisfy import Domain, show\n", "from engine.policy.satisfy import Domain\nfrom engine.expr.vocabulary import show\n"),
        ("import engine.models\nimport engine.service  # why\n", "import engine.models.runtime\nimport engine.runtime.service  # why\n"),
    ],
)
def test_each_kind_of_reference_is_rewritten(rewriter: object, old: str, new: str) -> None:
    """Imports of every form, dotted names in strings and prose, file paths and moved names become the new module's."""
    assert rewriter.rewrite(old) == new  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        "from engine.loader_cache import x\nengine.services\nengine/loader.pyc\nmy.engine.loader\n",
        "from engine.errors import PolicyError\nimport engine.types\nfrom engine.grpc.server import start_server\nengine.grpc.server.serve_forever\n",
        "from engine.models import runtime, explain\nimport engine.models.explain\n",
        'the engine.models package; source_modules = ["engine.models"]\n',
    ],
)
def test_other_names_are_left_alone(rewriter: object, text: str) -> None:
    """Names that only start like a moved module, unmoved modules, and the new submodules are not touched."""
    assert rewriter.rewrite(text) == text  # type: ignore[attr-defined]


def test_rewriting_twice_changes_nothing_more(rewriter: object) -> None:
    """The rewrite is idempotent, also where an old module became a package (engine.models)."""
    text = "from engine import models\nimport engine.models as m\nm.load_model\n'engine.models.Model' engine/models.py\n"
    once = rewriter.rewrite(text)  # type: ignore[attr-defined]
    assert once != text
    assert rewriter.rewrite(once) == once  # type: ignore[attr-defined]


def test_the_project_tree_has_no_old_reference() -> None:
    """`restructure.py --check` passes on the project: every move is made and no old name is left."""
    run = subprocess.run([sys.executable, str(SCRIPT), "--check"], cwd=PROJECT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 moves, 0 files rewritten, 0 conflicts" in run.stdout
