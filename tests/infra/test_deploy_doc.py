"""docs/deploy.md says what infra/ does: parameter defaults, the immutability rule, the hand-grant flow."""

from __future__ import annotations

import re

import pytest

from tests.infra.bicep_model import BACKUP_STORAGE, MAIN, ROOT, Infra

DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PARAM_ROW = re.compile(r"^\| `(?P<name>\w+)` \| [^|]* \| (?P<default>[^|]*) \|", re.M)


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.from_disk()


@pytest.fixture(scope="module")
def doc() -> str:
    return DEPLOY_DOC.read_text(encoding="utf-8")


def _description(infra: Infra, path: str, param: str) -> str:
    decorators = infra.tree(path)["parameters"][param]["decorators"]
    return str(next(d["argument"] for d in decorators if d["type"] == "description"))


def documented_defaults(doc: str) -> dict[str, str]:
    """Parameter -> the first `literal` of its Default column in the parameter table."""
    out = {}
    for row in PARAM_ROW.finditer(doc):
        literal = re.match(r"\s*`([^`]*)`", row["default"])
        if literal:
            out[row["name"]] = literal.group(1)
    return out


def test_parameter_defaults_in_the_doc_are_the_templates(infra, doc):
    documented = documented_defaults(doc)
    compared = 0
    for name, param in infra.tree(MAIN)["parameters"].items():
        default = param.get("default")
        if isinstance(default, bool) or not isinstance(default, int | str | list) or default in ("", []):
            continue  # expressions, and empty values the doc words ("empty", "none")
        if name not in documented:
            continue  # @secure() or described in prose
        expected = str(default) if not isinstance(default, list) else str(default).replace("'", '"')
        assert documented[name] == expected, f"docs/deploy.md: {name} is {documented[name]!r}, infra: {default!r}"
        compared += 1
    assert compared >= 12, "the parameter table was not read"


def test_immutability_is_described_as_a_container_creation_rule(infra, doc):
    """Version-level immutability can only be switched on when a container is created, not later."""
    row = next(line for line in doc.splitlines() if line.startswith("| `backupImmutabilityDays`"))
    texts = {
        f"{MAIN} backupImmutabilityDays": _description(infra, MAIN, "backupImmutabilityDays"),
        f"{BACKUP_STORAGE} immutabilityDays": _description(infra, BACKUP_STORAGE, "immutabilityDays"),
        "docs/deploy.md backupImmutabilityDays": row,
    }
    for where, text in texts.items():
        assert re.search(r"container is first created", text), f"{where}: {text}"
        assert not re.search(r"account is (first )?created", text), f"{where}: {text}"


def test_the_hand_grant_matches_the_template_and_warns_before_listing(doc):
    """A discovered instance granted by hand, then listed in protectedInstances, would make the
    deployment create the same assignment again under its own name: RoleAssignmentExists."""
    section = doc.split("## Adding an instance later", 1)[1].split("\n## ", 1)[0]
    grant = next(block for block in re.findall(r"```sh\n(.*?)```", section, re.S) if "assignment create" in block)
    assert "/blobServices/default/containers/" in grant, "the hand grant must use the template's scope (container)"
    assert "RoleAssignmentExists" in section
    assert "az role assignment delete" in section
    assert section.index("RoleAssignmentExists") < section.index("**Discovery instead of a list.**"), \
        "the warning must come with the listing steps"
