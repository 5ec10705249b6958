"""Every Bicep file under infra/ parses (pycep-parser 0.7.1; no Bicep compiler exists offline)."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from lark.exceptions import LarkError
from pycep import BicepParser

from tests.infra.bicep_model import INFRA, parse_bicep

BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def test_parser_version():
    # The structural tests rely on this version's output shape; checkov pins 0.5.1 in its own venv.
    assert version("pycep-parser") == "0.7.1"


def test_there_are_templates():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "app/function-app.bicep", "storage/backup-storage.bicep"} <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path):
    tree = BicepParser().parse(file_path=path)
    assert tree.get("resources") or tree.get("modules"), f"{path} declares nothing"


def test_a_syntax_error_is_reported():
    text = (INFRA / "app" / "identity.bicep").read_text()
    broken = text.replace("resource identity", "resource identity = {", 1)
    with pytest.raises(LarkError):
        parse_bicep(broken)
