"""The pinned requirement sets: exact versions of the whole closure, with hashes, from their .in files.

requirements.txt is what the Flex Consumption remote build installs (docs/deploy.md, "Pinned
dependencies"), so it must hold every package the deployed code imports, each at one exact version
with its hashes, and nothing that names this machine. ``make lock`` writes the .txt files from the
.in files; these tests fail when one was edited without the other, when the dev set drifts from the
runtime pins, or when the deployed code imports a module the runtime set does not provide.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("runtime_probe.py")
LOCKS = ("requirements.txt", "requirements-dev.txt", "requirements-checkov.txt")
# What the Function App deploys (the `git archive` line of docs/deploy.md); everything else is
# left out of the package by .funcignore.
DEPLOYED = ("function_app.py", "triggers", "dr_core")
# The fresh venvs live here, one per content of requirements.txt (and Python version).
VENV_CACHE = ROOT / ".local" / "pinned-runtime"

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


@dataclass
class Pin:
    version: str
    hashes: set[str] = field(default_factory=set)


def parse_lock(path: Path) -> dict[str, Pin]:
    """name -> Pin of a pip-compile output; fails on any line that is neither a pin nor its hash."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := PIN.match(line):
            current = pins.setdefault(canonicalize_name(match.group(1)), Pin(match.group(2)))
        elif line.startswith("--hash=") and current is not None:
            pass
        else:
            raise AssertionError(f"{path.name}:{number}: not an exact pin or its hash: {raw!r}")
        if current is not None:
            current.hashes.update(HASH.findall(line))
    return pins


def direct_requirements(path: Path) -> list[Requirement]:
    """The requirements an .in file names itself (not the -r/-c files it includes)."""
    found = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_package_is_pinned_exactly_with_its_hashes(lock: str) -> None:
    text = (ROOT / lock).read_text(encoding="utf-8")
    options = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    pins = parse_lock(ROOT / lock)
    assert pins, f"{lock} pins nothing"
    unhashed = sorted(name for name, pin in pins.items() if not pin.hashes)
    assert not unhashed, f"{lock}: no --hash for {unhashed} (pip's hash-checking mode needs one for every package)"
    # Nothing of this machine's pip configuration: an index, a find-links folder, a file path.
    for marker in ("--index-url", "--extra-index-url", "--find-links", "--trusted-host", "file:", "/opt/"):
        assert marker not in options, f"{lock} names {marker!r}: the lock must hold packages, not a machine's setup"
    assert "by the following command:\n#\n#    make lock\n" in text, f"{lock} was not written by `make lock`"


@pytest.mark.parametrize(("source", "lock"), [
    ("requirements.in", "requirements.txt"),
    ("requirements-dev.in", "requirements-dev.txt"),
    ("requirements-checkov.in", "requirements-checkov.txt"),
])
def test_each_lock_satisfies_its_in_file(source: str, lock: str) -> None:
    """An edited .in without `make lock` fails here: each direct requirement pinned, inside its range."""
    pins = parse_lock(ROOT / lock)
    for requirement in direct_requirements(ROOT / source):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{source} asks for {requirement}, {lock} does not pin it: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{lock} pins {requirement.name}=={pin.version}, outside {source}'s {requirement}: run `make lock`")


def test_the_dev_set_holds_the_runtime_pins_unchanged() -> None:
    includes = [line.strip() for line in (ROOT / "requirements-dev.in").read_text().splitlines()]
    assert "-c requirements.txt" in includes, "requirements-dev.in must be held at the runtime pins"
    assert "-r requirements.in" in includes, "requirements-dev.in must include the runtime set"
    runtime = parse_lock(ROOT / "requirements.txt")
    dev = parse_lock(ROOT / "requirements-dev.txt")
    drifted = {name: (pin.version, dev[name].version if name in dev else None)
               for name, pin in runtime.items() if name not in dev or dev[name].version != pin.version}
    assert not drifted, f"dev set differs from the runtime pins (runtime, dev): {drifted}; run `make lock`"
    rehashed = sorted(name for name, pin in runtime.items() if dev[name].hashes != pin.hashes)
    assert not rehashed, f"dev set has other hashes than the runtime set for {rehashed}; run `make lock`"


def test_parse_lock_refuses_a_range_and_finds_a_missing_hash(tmp_path: Path) -> None:
    ranged = tmp_path / "ranged.txt"
    ranged.write_text("azure-core>=1.30,<2\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        parse_lock(ranged)
    unhashed = tmp_path / "unhashed.txt"
    unhashed.write_text("azure-core==1.41.0\nidna==3.21 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    assert {name for name, pin in parse_lock(unhashed).items() if not pin.hashes} == {"azure-core"}


# ---------------------------------------------------------------------------------------------
# The pinned runtime set, installed alone into a fresh venv, as the remote build installs it.
# ---------------------------------------------------------------------------------------------


def _pinned_runtime_venv() -> Path:
    """A venv holding exactly requirements.txt, built once per content of that file.

    Installed with pip's configured index (whatever `pip config list` says; nothing here names one)
    in hash-checking mode, with dependencies: a package of the closure missing from the file fails the
    install ("Hashes are required in --require-hashes mode"). Built beside its final place and
    renamed, so an interrupted build is never taken for a cached one; under a file lock, because
    parallel test workers may all want it at once (one builds, the others wait and reuse it).
    """
    digest = hashlib.sha256((ROOT / "requirements.txt").read_bytes())
    digest.update(f"{sys.version_info[:2]} {sys.platform}".encode())
    venv = VENV_CACHE / f"venv-{digest.hexdigest()[:16]}"
    python = venv / "bin" / "python"
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    with open(VENV_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists():
            return venv
        for stale in [*VENV_CACHE.glob("venv-*"), *VENV_CACHE.glob("building-*")]:  # earlier locks, failed builds
            shutil.rmtree(stale, ignore_errors=True)
        building = VENV_CACHE / f"building-{os.getpid()}"
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, timeout=120)
        install = subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-input", "--require-hashes", "--prefer-binary", "-r", str(ROOT / "requirements.txt")],
            capture_output=True, text=True, timeout=600, check=False, env=_index_env(),
        )
        assert install.returncode == 0, f"the pinned runtime set does not install:\n{install.stderr[-4000:]}"
        check = subprocess.run([str(building / "bin" / "python"), "-m", "pip", "check"],
                               capture_output=True, text=True, timeout=120, check=False)
        assert check.returncode == 0, f"the pinned runtime set is inconsistent:\n{check.stdout}{check.stderr}"
        building.rename(venv)
    return venv


def _index_env() -> dict[str, str]:
    """This process's environment without the local-Azure CA bundle the test session sets (tests/conftest.py):
    pip must trust the package index with the system's certificates, as the remote build does."""
    return {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")}


@pytest.fixture(scope="module")
def runtime_venv() -> Path:
    return _pinned_runtime_venv()


def _probe(venv: Path, *args: str) -> dict[str, list]:
    # -I: no PYTHONPATH, no user site, not the current folder; the probe adds the project root itself.
    proc = subprocess.run([str(venv / "bin" / "python"), "-I", str(PROBE), str(ROOT), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, f"probe crashed:\n{proc.stderr[-3000:]}"
    result: dict[str, list] = json.loads(proc.stdout)
    return result


@pytest.mark.pinned_venv
def test_the_pinned_runtime_set_installs_alone_and_holds_nothing_else(runtime_venv: Path) -> None:
    freeze = subprocess.run([str(runtime_venv / "bin" / "python"), "-m", "pip", "freeze", "--all"],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    installed: dict[str, str] = {canonicalize_name(line.split("==")[0]): line.split("==")[1]
                 for line in freeze.splitlines() if "==" in line}
    pins = parse_lock(ROOT / "requirements.txt")
    wrong = {name: (pin.version, installed.get(name)) for name, pin in pins.items()
             if installed.get(name) != pin.version}
    assert not wrong, f"installed versions differ from the pins (pinned, installed): {wrong}"
    extra = set(installed) - set(pins) - {"pip", "setuptools", "wheel"}  # what venv itself brings
    assert not extra, f"installed beyond requirements.txt: {sorted(extra)}"


@pytest.mark.pinned_venv
def test_function_app_and_everything_it_imports_resolve_against_the_pinned_set(runtime_venv: Path) -> None:
    result = _probe(runtime_venv, *DEPLOYED)
    assert "function_app" in result["checked"]
    assert any(name.startswith("azure.storage.blob") for name in result["checked"]), (
        "the probe found none of the lazy SDK imports: it is not reading the function bodies")
    assert not result["failures"], "the deployed code imports what requirements.txt lacks:\n" + "\n".join(
        f"  {f['module']} (imported in {f['where']}): {f['error']}" for f in result["failures"])


@pytest.mark.pinned_venv
def test_the_probe_reports_an_import_only_the_dev_set_provides(runtime_venv: Path, tmp_path: Path) -> None:
    """The check above can fail: pytest (dev only), a lazy SDK import and a TYPE_CHECKING one."""
    source = tmp_path / "uses_dev_only.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import mypy  # never runs: not reported\n"
        "def later():\n    import pytest\n    from azure.storage.blob import NoSuchClient\n"
        "    from azure.storage.blob import BlobClient\n"
    )
    failures = {f["module"] for f in _probe(runtime_venv, "--source", str(source))["failures"]}
    assert failures == {"pytest", "azure.storage.blob.NoSuchClient"}
