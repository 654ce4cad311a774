"""Move the engine's top-level modules into folders by concept, and rewrite every reference to them.

Issue 13, item 6: ``engine/policy/`` (what policy owners write, and how it is checked and compiled),
``engine/runtime/`` (what happens per request, and the reload that swaps what serves),
``engine/models/`` (model files to scores and reasons). docs/architecture.md describes the result.

Run from anywhere inside the repository, as often as you like (it is idempotent)::

    .venv/bin/python scripts/restructure.py           # move what is still at an old path, rewrite references
    .venv/bin/python scripts/restructure.py --check   # change nothing; exit 1 if anything would change

Each run does two steps:

1. **Move.** Every file of ``MOVES`` that still exists at its old path is moved with ``git mv``;
   a move whose old path is gone is skipped. When both the old and the new path exist (a branch
   merged after the move re-created the old file) nothing is moved: the script names both files and
   exits 1, so that a person merges them.
2. **Rewrite.** Every text file git knows (tracked, or new and not ignored) is rewritten, whoever
   wrote it: ``from engine.loader import x``, ``import engine.loader``, ``from engine import loader``
   (becomes ``from engine.policy import loader``), dotted names in strings and prose
   (``mock.patch("engine.service.time")``, logger names, configuration), and file paths
   (``engine/loader.py`` in docs and comments), and names moved out of a module that stays
   (``SYMBOL_MOVES``: ``from engine.grpc.server import serve`` becomes ``from engine.app import serve``). Python files the rewrite changed get their imports
   re-sorted by ruff (rule ``I``), as the static gate wants them.

Because the rewrite runs over everything each time, running it again after another branch is merged
fixes that branch's references to the old modules too. ``--check`` is what the static gate runs
(scripts/static_checks.sh), so an old reference brought in later fails CI with the file and line.

No compatibility shim is left at any old path: the one external entry point,
``verdict = "engine.cli:console_main"`` in pyproject.toml, names ``engine.cli``, which does not move.
Not rewritten: bare file names without their folder (``loader.py`` in prose), this script and its test, the
recorded benchmark results (benchmarks/results: history) and generated code (engine/grpc/gen).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# old path -> new path, one row per module. Order does not matter.
MOVES: dict[str, str] = {
    # policy: what owners write (schemas, YAML), and how it is loaded, checked, tested and compiled
    "engine/schema.py": "engine/policy/schema.py",
    "engine/schema_messages.py": "engine/policy/schema_messages.py",
    "engine/yamlio.py": "engine/policy/yamlio.py",
    "engine/yaml_messages.py": "engine/policy/yaml_messages.py",
    "engine/loader.py": "engine/policy/loader.py",
    "engine/compiler.py": "engine/policy/compiler.py",
    "engine/tables.py": "engine/policy/tables.py",
    "engine/durable.py": "engine/policy/durable.py",
    "engine/lint.py": "engine/policy/lint.py",
    "engine/satisfy.py": "engine/policy/satisfy.py",
    "engine/protected.py": "engine/policy/protected.py",
    "engine/testcases.py": "engine/policy/testcases.py",
    "engine/policytest.py": "engine/policy/policytest.py",
    "engine/release.py": "engine/policy/release.py",
    "engine/activation.py": "engine/policy/activation.py",
    "engine/approvals.py": "engine/policy/approvals.py",  # maker-checker (issue 17), merged after the move
    # runtime: per request (validation, the compiled flow, the service, routing, shadows,
    # idempotency, masking, notices) and the reload that swaps what serves
    "engine/flow.py": "engine/runtime/flow.py",
    "engine/validation.py": "engine/runtime/validation.py",
    "engine/service.py": "engine/runtime/service.py",
    "engine/routing.py": "engine/runtime/routing.py",
    "engine/shadow.py": "engine/runtime/shadow.py",
    "engine/idempotency.py": "engine/runtime/idempotency.py",
    "engine/privacy.py": "engine/runtime/privacy.py",
    "engine/pan.py": "engine/runtime/pan.py",
    "engine/notice.py": "engine/runtime/notice.py",
    "engine/reload.py": "engine/runtime/reload.py",
    "engine/fallback.py": "engine/runtime/fallback.py",  # issue 16 item 5, merged after the move
    # models: verified loading, encoding, ONNX scoring, reasons, the inventory
    "engine/models.py": "engine/models/runtime.py",
    "engine/explain.py": "engine/models/explain.py",
    "engine/onnx_runtime.py": "engine/models/onnx_runtime.py",
    "engine/inventory.py": "engine/models/inventory.py",
}

# Names moved out of a module that stays: (old module, name) -> new module. The code was moved by
# hand (it is one commit on the branch that made this script); the script rewrites the references
# to it that a branch merged later brings in: ``from engine.grpc.server import serve``,
# ``mock.patch("engine.grpc.server._run_one")``.
SYMBOL_MOVES: dict[tuple[str, str], str] = {
    # issue 13, item 3: the composition root out of the transport
    **{
        ("engine.grpc.server", name): "engine.app"
        for name in (
            "serve", "_run_one", "_load", "_serve_metrics", "_log_security", "_start_reloading",
            "_on_signals", "_reserved_port", "_run_workers", "_fork_workers",
        )
    },
    # issue 13, item 4: the models package (card, encoding shared with training, explainers, runtime)
    **{
        ("engine.models.runtime", name): "engine.models.card"
        for name in ("CARD_FILE", "CARD_SCHEMA", "CardArtifact", "CardArtifacts", "CardFeature", "CardOutput", "ModelCard", "read_card")
    },
    **{
        ("engine.models.runtime", name): "engine.models.encoding"
        for name in ("LIGHTGBM_ZERO", "NAN", "FeatureSpec", "encode_value", "make_encoder")
    },
    ("engine.models.runtime", "LinearExplainer"): "engine.models.explainers",
    # issue 13, items 2 and 6: reading one policy file and the routing file out of the loader
    ("engine.policy.loader", "read_document"): "engine.policy.documents",
    ("engine.policy.loader", "MAX_POLICY_FILE_BYTES"): "engine.policy.documents",
    # issue 13, item 5: one vocabulary of the expression language
    ("engine.expr.check", "negate"): "engine.expr.vocabulary",
    ("engine.policy.satisfy", "show"): "engine.expr.vocabulary",
    # issue 13, item 2(f): modules split along their own concepts to under ~400 lines
    **{
        ("engine.audit.replay", name): "engine.audit.replay_report"
        for name in ("ACTIONS", "MAX_EXAMPLES", "Compared", "ExactSum", "Metrics", "ReplayReport", "ranked", "_drivers")
    },
    ("engine.grpc.wire", "ResponseEncoder"): "engine.grpc.encoder",
    ("engine.grpc.wire", "field_tag"): "engine.grpc.wire_format",
    ("engine.policy.compiler", "FlowSource"): "engine.policy.sources",
    ("engine.policy.compiler", "RuleSource"): "engine.policy.sources",
    **{
        ("engine.policy.durable", name): "engine.policy.durable_ruleset"
        for name in ("DurableRuleset", "dumps", "_Ruleset", "_scalar", "_number", "_MAX_INT", "_EXACT")
    },
    ("engine.policy.lint", "cleaning_mismatches"): "engine.policy.cleaning_lint",
    ("engine.training.binary", "faithfulness_section"): "engine.training.report",
    ("engine.training.binary", "fairness_section"): "engine.training.report",
    ("engine.training.binary", "_figure"): "engine.training.report",
    **{
        ("engine.runtime.fallback", name): "engine.runtime.step_pool"
        for name in ("DEFAULT_WORKERS", "StepCall", "WorkerPool")
    },
    ("engine.batch.backtest", "plot"): "engine.batch.backtest_plots",
    ("engine.state.plan", "compile_plan"): "engine.state.plan_compile",
    ("engine.expr.codegen", "_SAFE"): "engine.expr.generator",
    ("engine.expr.codegen", "_STEP"): "engine.expr.generator",
    ("engine.expr.codegen", "_INLINE_STEPS"): "engine.expr.generator",
    **{
        ("engine.audit.segments", name): "engine.audit.private_files"
        for name in ("DIR_MODE", "FILE_MODE", "private_dir")
    },
    # issue 13, item 5: one problem formatter (Problem.__str__; format_problem is str as a function)
    ("engine.policy.lint", "format_problem"): "engine.errors",
    # issue 13, item 3: all of routing in engine/runtime/routing.py (version order, the routing file's checks, resolution)
    ("engine.policy.loader", "version_key"): "engine.runtime.routing",
    ("engine.policy.routing_file", "Routing"): "engine.runtime.routing",
    # issue 13, item 2(f): the expression tree out of the parser (engine/expr/syntax.py was 440 lines)
    **{
        ("engine.expr.syntax", name): "engine.expr.nodes"
        for name in ("IN_LIST", "BinOp", "BoolOp", "Call", "Compare", "InList", "Literal", "Name", "Neg", "Node", "Not",
                     "chain", "lists_in", "names_in", "_nodes")
    },
    ("engine.policy.compiler", "derived_reads"): "engine.policy.derived",
}

# The docstring of each new package's __init__.py (written only when the file is missing).
PACKAGES: dict[str, str] = {
    "engine/policy": (
        "Policy: what owners write (flows, rules, tables, routing, tests) and how it is loaded, checked and compiled.\n\n"
        "Its output is the immutable ``PolicySet`` of compiled flows that ``engine.runtime`` serves.\n"
        "It never imports an edge (grpc, commands, batch, console, cli, app): docs/architecture.md.\n"
    ),
    "engine/runtime": (
        "Runtime: what happens per request (validate, route, decide, shadow, mask) and the reload that swaps it.\n\n"
        "Uses the policy output and the models; never imports an edge (grpc, commands, batch, console,\n"
        "cli, app): docs/architecture.md.\n"
    ),
    "engine/models": (
        "Models: verified loading of model directories, feature encoding, ONNX scoring, reasons, the inventory.\n\n"
        "Never imports an edge (grpc, commands, batch, console, cli, app): docs/architecture.md.\n"
    ),
}

TEXT_SUFFIXES = {".py", ".pyi", ".md", ".rst", ".txt", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".sh", ".json", ".mjs"}
TEXT_NAMES = {"Dockerfile", "Makefile"}
SKIP_PREFIXES = ("benchmarks/results/", "engine/grpc/gen/", ".venv/")
SELF = ("scripts/restructure.py", "tests/unit/test_restructure.py")  # they name the old modules on purpose


def module_of(path: str) -> str:
    """``engine/policy/loader.py`` -> ``engine.policy.loader``."""
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


class Rewriter:
    """Rewrites module names and paths of ``MOVES`` in one text, whatever kind of file it is."""

    def __init__(self, moves: dict[str, str], root: Path, symbols: dict[tuple[str, str], str] | None = None) -> None:
        self.modules = {module_of(old): module_of(new) for old, new in moves.items()}
        self.symbols = symbols or {}
        # Names below a module that became a package (engine.models -> engine/models/...): there
        # ``engine.models.explain`` is the new submodule, not an attribute of the old module.
        self.children: dict[str, set[str]] = {}
        new_modules = set(self.modules.values())
        for old in self.modules:
            package_dir = root / old.replace(".", "/")
            names = {m.removeprefix(old + ".").split(".")[0] for m in new_modules if m.startswith(old + ".")}
            if package_dir.is_dir():
                names |= {p.stem for p in package_dir.iterdir() if p.suffix == ".py" or p.is_dir()}
            if names:
                self.children[old] = names
        alternatives = "|".join(re.escape(m) for m in sorted(self.modules, key=len, reverse=True))
        self._dotted = re.compile(rf"(?<![\w.])({alternatives})(?![\w])(?:\.(\w+))?")
        symbol_alternatives = "|".join(re.escape(f"{module}.{name}") for module, name in sorted(self.symbols, key=lambda k: -len(k[0] + k[1])))
        self._symbol = re.compile(rf"(?<![\w.])({symbol_alternatives})(?![\w])") if self.symbols else None
        self._paths = {f"{old}": f"{new}" for old, new in moves.items()}
        path_alternatives = "|".join(re.escape(p) for p in sorted(self._paths, key=len, reverse=True))
        self._path = re.compile(rf"(?<![\w./-])({path_alternatives})(?![\w])")
        # `from X import a, b as c` on one line, or parenthesised over several lines; `import X [as Y]`.
        self._from = re.compile(r"^([ \t]*)from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*[^\s#;])", re.MULTILINE)
        self._import = re.compile(rf"^([ \t]*import[ \t]+)({alternatives})(?=[ \t]+as[ \t]|[ \t]*(?:#|$))", re.MULTILINE)

    def rewrite(self, text: str) -> str:
        """The text with every reference to an old module or path replaced by the new one.

        Two passes: a name moved out of a module that itself moved (``show`` of the old satisfy
        module) reaches its new module in the second.
        """
        return self._pass(self._pass(text))

    def _pass(self, text: str) -> str:
        out: list[str] = []
        last = 0
        for match in self._from.finditer(text):
            out.append(self._rewrite_names(text[last : match.start()]))
            out.append(self._rewrite_from(match))
            last = match.end()
        out.append(self._rewrite_names(text[last:]))
        return "".join(out)

    def _rewrite_names(self, text: str) -> str:
        text = self._import.sub(lambda m: m.group(1) + self.modules[m.group(2)], text)
        if self._symbol is not None:
            text = self._symbol.sub(self._symbol_replacement, text)
        text = self._dotted.sub(self._dotted_replacement, text)
        return self._path.sub(lambda m: self._paths[m.group(1)], text)

    def _symbol_replacement(self, match: re.Match[str]) -> str:
        module, _, name = match.group(1).rpartition(".")
        return f"{self.symbols[(module, name)]}.{name}"

    def _dotted_replacement(self, match: re.Match[str]) -> str:
        old, attribute = match.group(1), match.group(2)
        if old in self.children and (attribute is None or attribute in self.children[old]):
            # A module that became a package (engine.models): the bare name now names the package,
            # and ``engine.models.explain`` its new submodule; only imports and attributes move.
            return match.group(0)
        return self.modules[old] + (f".{attribute}" if attribute is not None else "")

    def _rewrite_from(self, match: re.Match[str]) -> str:
        indent, package, names_text = match.group(1), match.group(2), match.group(3)
        names = [n.strip() for n in names_text.strip("()").replace("\n", " ").split(",") if n.strip()]
        if package in self.modules:
            if all(n.split(" as ")[0].strip() in self.children.get(package, ()) for n in names):
                return match.group(0)  # `from engine.models import runtime`: the new package
            return match.group(0).replace(f"from {package}", f"from {self.modules[package]}", 1)
        groups: dict[str, list[str]] = {}
        for name in names:
            real, _, alias = (part.strip() for part in name.partition(" as "))
            moved = self.modules.get(f"{package}.{real}")
            if moved is None and (package, real) in self.symbols:
                groups.setdefault(self.symbols[(package, real)], []).append(name)
                continue
            if moved is None:
                groups.setdefault(package, []).append(name)
                continue
            parent, _, leaf = moved.rpartition(".")
            local = alias or real
            groups.setdefault(parent, []).append(leaf if leaf == local else f"{leaf} as {local}")
        if list(groups) == [package]:
            return match.group(0)
        return "\n".join(f"{indent}from {parent} import {', '.join(items)}" for parent, items in groups.items())


def git(*args: str, cwd: Path) -> str:
    """Run git in the repository and return its standard output."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def text_files(root: Path) -> Iterable[Path]:
    """Every text file git knows in the tree (tracked, or new and not ignored), but the skipped ones."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root).split("\0")
    for name in sorted(set(listed)):
        if not name or name in SELF or name.startswith(SKIP_PREFIXES):
            continue
        path = root / name
        if (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES) and path.is_file():
            yield path


def move(root: Path, check: bool) -> tuple[list[str], list[str]]:
    """Move every file still at its old path; return (moves made or due, conflicts)."""
    done, conflicts = [], []
    for old, new in MOVES.items():
        source, target = root / old, root / new
        if not source.exists():
            continue
        if target.exists():
            conflicts.append(f"both {old} and {new} exist: merge the old file's changes into the new one and delete the old")
            continue
        done.append(f"{old} -> {new}")
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            git("mv", old, new, cwd=root)
    for package, doc in PACKAGES.items():
        init = root / package / "__init__.py"
        if (root / package).is_dir() and not init.exists():
            done.append(f"new {package}/__init__.py")
            if not check:
                init.write_text(f'"""{doc}"""\n', encoding="utf-8")
                git("add", str(init.relative_to(root)), cwd=root)
    return done, conflicts


def rewrite(root: Path, check: bool) -> list[str]:
    """Rewrite every reference in every text file; return the files changed (or to change)."""
    rewriter = Rewriter(MOVES, root, SYMBOL_MOVES)
    changed = []
    for path in text_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new_text = rewriter.rewrite(text)
        if new_text != text:
            changed.append(str(path.relative_to(root)))
            if not check:
                path.write_text(new_text, encoding="utf-8")
    return changed


def sort_imports(root: Path, files: list[str]) -> None:
    """Re-sort the imports of the rewritten Python files with ruff (rule I), when ruff is installed."""
    python = [f for f in files if f.endswith((".py", ".pyi"))]
    ruff = root / ".venv/bin/ruff"
    command = str(ruff) if ruff.exists() else shutil.which("ruff")
    if not python or command is None:
        return
    subprocess.run([command, "check", "--select", "I", "--fix", "--quiet", *python], cwd=root, check=False)


def main(argv: list[str] | None = None) -> int:
    """Run both steps; exit 1 on a conflict, or (with --check) when anything would change."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything would move or be rewritten")
    args = parser.parse_args(argv)
    root = Path(git("rev-parse", "--show-toplevel", cwd=Path(__file__).resolve().parent).strip())
    moved, conflicts = move(root, args.check)
    changed = rewrite(root, args.check)
    if not args.check:
        sort_imports(root, changed)
    verb = "would " if args.check else ""
    for line in moved:
        print(f"{verb}move: {line}")
    for name in changed:
        print(f"{verb}rewrite: {name}")
    for line in conflicts:
        print(f"conflict: {line}", file=sys.stderr)
    print(f"restructure: {len(moved)} moves, {len(changed)} files rewritten, {len(conflicts)} conflicts" + (" (check only)" if args.check else ""))
    if conflicts or (args.check and (moved or changed)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
