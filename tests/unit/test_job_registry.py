"""Every job name the platform enqueues is a function the worker registers.

arq looks a job up by name only when a worker picks it up: a name nobody registered is enqueued without
complaint and then fails on every worker, far from the line that sent it. So the names are found
statically: every ``enqueue_after_commit(session, NAME, ...)`` and ``enqueue_job(NAME, ...)`` under
``services/``, with ``NAME`` resolved through module constants (``PREPARE_PRINT = "prepare_print"``) and the
imports that bring them in, and compared with what ``services/workers/settings.py`` registers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from arq.worker import func

from services.config import Settings
from services.workers.settings import FUNCTIONS, cron_jobs

ROOT = Path(__file__).resolve().parents[2]

# The call, and the position of the job name among its arguments (or the keyword that names it).
ENQUEUE_CALLS = {"enqueue_after_commit": (1, "function"), "enqueue_job": (0, "function")}
# Forwarders send a name that was checked where it was first enqueued: services.queue.send passes the
# outbox's ``QueuedJob.function`` on to arq.
FORWARDERS = {("services.queue", "send")}


@dataclass(frozen=True, slots=True)
class Enqueued:
    where: str  # path:line
    name: str | None  # None: the argument is not a constant the scan can resolve
    source: str  # the argument as written


@dataclass(frozen=True, slots=True)
class _Module:
    constants: dict[str, str]  # NAME = "literal" at module level
    imported: dict[str, tuple[str, str | None]]  # local name -> (module, attribute; None for a module)
    tree: ast.Module


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve_from(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: -node.level]
    return ".".join([*base, node.module] if node.module else base)


def _read(path: Path, module: str) -> _Module:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    constants: dict[str, str] = {}
    imported: dict[str, tuple[str, str | None]] = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, node)
            imported.update({a.asname or a.name: (source, a.name) for a in node.names})
        elif isinstance(node, ast.Import):
            imported.update({a.asname: (a.name, None) for a in node.names if a.asname})
    return _Module(constants, imported, tree)


class _Scan:
    """The modules of a package tree, read once, and the job names their enqueue calls send."""

    def __init__(self, root: Path, package: str) -> None:
        self.root = root
        self.modules = {
            _module_name(p, root): _read(p, _module_name(p, root))
            for p in sorted((root / package).rglob("*.py"))
        }

    def constant(self, module: str, name: str, seen: frozenset[tuple[str, str]] = frozenset()) -> str | None:
        """The string ``name`` is bound to in ``module``, following ``from x import NAME`` chains."""
        read = self.modules.get(module)
        if read is None or (module, name) in seen:
            return None
        if name in read.constants:
            return read.constants[name]
        source, attribute = read.imported.get(name, ("", None))
        if attribute is None:
            return None
        return self.constant(source, attribute, seen | {(module, name)})

    def _name(self, module: str, node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.constant(module, node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # module.NAME, with the module imported under a local name.
            source, attribute = self.modules[module].imported.get(node.value.id, ("", ""))
            target = source if attribute is None else f"{source}.{attribute}"
            return self.constant(target, node.attr)
        return None

    def enqueued(self) -> list[Enqueued]:
        found = []
        for module, read in self.modules.items():
            path = (self.root / module.replace(".", "/")).with_suffix(".py")
            for function, call, argument in _enqueue_calls(read.tree):
                if (module, function) in FORWARDERS:
                    continue
                where = f"{path.relative_to(self.root)}:{call.lineno}"
                found.append(Enqueued(where, self._name(module, argument), ast.unparse(argument)))
        return found


class _EnqueueCalls(ast.NodeVisitor):
    """(innermost enclosing function, call, job name argument) of every enqueue call in a module."""

    def __init__(self) -> None:
        self.scope = "<module>"
        self.calls: list[tuple[str, ast.Call, ast.expr]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.scope = self.scope, node.name
        self.generic_visit(node)
        self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if callee in ENQUEUE_CALLS:
            position, keyword = ENQUEUE_CALLS[callee]
            named = [k.value for k in node.keywords if k.arg == keyword]
            arguments = [node.args[position]] if len(node.args) > position else named
            self.calls += [(self.scope, node, argument) for argument in arguments[:1]]
        self.generic_visit(node)


def _enqueue_calls(tree: ast.Module) -> list[tuple[str, ast.Call, ast.expr]]:
    visitor = _EnqueueCalls()
    visitor.visit(tree)
    return visitor.calls


def registered_names() -> set[str]:
    """The names a worker built from services/workers/settings.py looks jobs up by, as arq builds them."""
    functions = {func(f).name for f in FUNCTIONS}
    return functions | {job.name for job in cron_jobs(Settings(_env_file=None))}


def unregistered(enqueued: list[Enqueued], registered: set[str]) -> list[str]:
    return [
        f"{e.where}: {e.source} -> {e.name!r}"
        if e.name is not None
        else f"{e.where}: cannot resolve {e.source} to a job name"
        for e in enqueued
        if e.name not in registered
    ]


def test_every_enqueued_job_name_is_registered_with_the_worker() -> None:
    enqueued = _Scan(ROOT, "services").enqueued()

    assert unregistered(enqueued, registered_names()) == []


def test_the_scan_finds_the_platforms_enqueue_calls() -> None:
    # A scan that finds nothing passes the test above: it must see the known calls, through constants
    # imported from other modules.
    names = {e.name for e in _Scan(ROOT, "services").enqueued()}

    assert {"check_revision", "prepare_print", "ship_order", "deliver_webhook"} <= names
    assert {"publish_order_events", "process_inbound_webhook", "reroute_site"} <= names


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / "services" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "services" / name).write_text(text, encoding="utf-8")
    return root


def test_an_unregistered_name_is_reported_where_it_is_enqueued(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "names.py": 'BOGUS = "no_such_job"\n',
            "jobs.py": (
                "from services.names import BOGUS as ALIAS\n"
                "def wake(session):\n"
                "    enqueue_after_commit(session, ALIAS, '1', job_id='x')\n"
            ),
        },
    )

    problems = unregistered(_Scan(root, "services").enqueued(), registered_names())

    assert problems == ["services/jobs.py:3: ALIAS -> 'no_such_job'"]


def test_a_name_the_scan_cannot_resolve_is_reported(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {"jobs.py": "async def wake(queue, name):\n    await queue.enqueue_job(name, _job_id='x')\n"},
    )

    problems = unregistered(_Scan(root, "services").enqueued(), registered_names())

    assert problems == ["services/jobs.py:2: cannot resolve name to a job name"]
