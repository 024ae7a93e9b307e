"""The admin calls services and selectors only: never the push (the outbox), the provider clients,
the sync, the look-ups or the tasks."""

import ast
from pathlib import Path

import pytest

ADMIN = Path(__file__).resolve().parents[2] / "invoices" / "admin"
FORBIDDEN = (
    "integrations",
    "invoices.push",
    "invoices.sync",
    "invoices.providers",
    "invoices.lookup",
    "invoices.tasks",
)


def forbidden_imports(source: str) -> list[str]:
    """The modules of ``FORBIDDEN`` (or inside them) that ``source`` imports."""
    imported = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # ``from invoices import push`` imports the module invoices.push.
            imported += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return sorted(
        {name for name in imported for banned in FORBIDDEN if name == banned or name.startswith(f"{banned}.")}
    )


@pytest.mark.parametrize("path", sorted(ADMIN.glob("*.py")), ids=lambda path: path.name)
def test_the_admin_imports_no_push_client_sync_or_task(path):
    assert forbidden_imports(path.read_text()) == []


def test_the_check_sees_each_way_of_importing():
    source = "\n".join(
        [
            "import integrations.errors",
            "from integrations import errors",
            "from invoices import push, selectors",
            "from invoices.sync.mirror import MIRRORED_FIELDS",
            "from invoices.providers import is_configured",
            "def view():",
            "    from invoices.tasks import push_invoices",
            "from invoices.services import payment",
            "from invoices.lookupish import x",
        ]
    )
    assert forbidden_imports(source) == [
        "integrations",
        "integrations.errors",
        "invoices.providers",
        "invoices.providers.is_configured",
        "invoices.push",
        "invoices.sync.mirror",
        "invoices.sync.mirror.MIRRORED_FIELDS",
        "invoices.tasks",
        "invoices.tasks.push_invoices",
    ]
