"""The engine without HTTP: failure containment that the process tests cannot provoke."""

from __future__ import annotations

from pathlib import Path

from emu_support import PROD, SEED_PATH

from emulator.apim.operations import Engine
from emulator.apim.params import BackupRestoreParameters
from emulator.apim.state import Store


class ExplodingBlobs:
    """A storage layer with a bug: raises something that is not a storage error."""

    def write(self, *args: object) -> None:
        raise RuntimeError("boom")

    def read(self, *args: object) -> bytes:
        raise RuntimeError("boom")

    def cors_allowed_methods(self, *args: object) -> None:
        return None


def test_an_emulator_bug_fails_the_operation_not_the_emulator(tmp_path: Path) -> None:
    engine = Engine(Store(tmp_path / "state.sqlite"), ExplodingBlobs(), op_duration=0)  # type: ignore[arg-type]
    engine.initialize(SEED_PATH, reset=True)
    params = BackupRestoreParameters("apimdrbackups", "apim-backups", "b", "SystemAssignedManagedIdentity", None, None)
    op = engine.start("backup", PROD, params, "2024-05-01", "caller")
    assert engine.complete_due() == 1
    failed = engine.operation(op["id"])
    assert failed is not None and failed["status"] == "Failed"
    assert failed["error"]["status"] == 500 and failed["error"]["code"] == "InternalServerError"
    svc = engine.service(PROD)
    assert svc is not None and svc["provisioningState"] == "Succeeded" and svc["activeOperation"] is None
    assert engine.complete_due() == 0  # nothing left to retry on every request


def test_a_state_file_of_an_older_emulator_is_upgraded(tmp_path: Path) -> None:
    """Earlier emulators kept a free-form ``configuration`` inside each service record: moved into entities."""
    import json

    path = tmp_path / "state.sqlite"
    engine = Engine(Store(path), ExplodingBlobs(), op_duration=0)  # type: ignore[arg-type]
    engine.initialize(SEED_PATH, reset=True)
    old = engine.service(PROD)
    assert old is not None
    old["configuration"] = {"apis": [{"id": "legacy-api", "displayName": "Legacy", "path": "legacy"}],
                            "products": [{"id": "old", "displayName": "Old", "apis": ["legacy-api"]}]}
    engine.store.put_service(old)
    engine.store.close()

    upgraded = Engine(Store(path), ExplodingBlobs(), op_duration=0)  # type: ignore[arg-type]
    upgraded.initialize(SEED_PATH, reset=False)
    record = upgraded.service(PROD)
    assert record is not None and "configuration" not in record
    document = upgraded.configuration_document(PROD)
    assert [a["id"] for a in document["apis"]] == ["legacy-api"]
    assert document["products"][0]["apis"] == ["legacy-api"]
    assert [g["id"] for g in document["groups"]] == ["administrators", "developers", "guests"]  # built in
    assert json.loads(json.dumps(document)) == document
