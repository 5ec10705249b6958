"""Settings: every bad value is named, nothing is half-loaded, one bad instance doesn't stop the rest."""

import json

import pytest

from dr_core.kernel.settings import SETTINGS, SettingsError, StorageAccessType, load_settings

SUB = "00000000-0000-0000-0000-000000000001"
RID = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ApiManagement/service/apim-one"
RID2 = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ApiManagement/service/apim-two"


def base(**overrides):
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "APIM_DR_BACKUP_STORAGE_ACCOUNT": "apimdrbackups",
        "APIM_DR_INSTANCES": json.dumps([RID]),
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def problems(env):
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    return info.value.problems


def test_minimal_settings_load_with_defaults():
    s = load_settings(base())
    assert s.backup_container == "apim-backups"
    assert s.access_type is StorageAccessType.SYSTEM_ASSIGNED
    assert s.arm_endpoint == "https://management.azure.com"
    assert s.backup_blob_endpoint == "https://apimdrbackups.blob.core.windows.net"
    assert s.schedule.expression == "0 0 2 * * *"
    assert [str(i.resource_id) for i in s.instances] == [RID]


def test_five_field_schedule_loads():
    # The Functions timer takes five fields as minute-first with no seconds.
    s = load_settings(base(BACKUP_SCHEDULE="30 2 * * Mon-Fri"))
    assert (s.schedule.seconds, s.schedule.minutes, s.schedule.hours) == ({0}, {30}, {2})


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("APIM_DR_BACKUP_STORAGE_ACCOUNT", None, "APIM_DR_BACKUP_STORAGE_ACCOUNT is missing"),
        ("APIM_DR_BACKUP_STORAGE_ACCOUNT", "Not_A_Name", "APIM_DR_BACKUP_STORAGE_ACCOUNT="),
        ("APIM_DR_BACKUP_CONTAINER", "UPPER", "APIM_DR_BACKUP_CONTAINER="),
        ("APIM_DR_BACKUP_CONTAINER", "a--b", "APIM_DR_BACKUP_CONTAINER="),
        ("BACKUP_SCHEDULE", "0 0 2 * * 7", "BACKUP_SCHEDULE: schedule '0 0 2 * * 7', day-of-week field"),
        ("BACKUP_SCHEDULE", "0 0 2 ? * *", "BACKUP_SCHEDULE: schedule '0 0 2 ? * *', day field"),
        ("BACKUP_SCHEDULE", "0 0 25 * * *", "BACKUP_SCHEDULE: schedule '0 0 25 * * *', hour field"),
        ("BACKUP_SCHEDULE", "0 0 2 *", "BACKUP_SCHEDULE: schedule '0 0 2 *' has 4 field(s)"),
        ("APIM_DR_STORAGE_ACCESS_TYPE", "SharedKey", "APIM_DR_STORAGE_ACCESS_TYPE="),
        ("APIM_DR_ARM_ENDPOINT", "http://management.azure.com", "APIM_DR_ARM_ENDPOINT"),
        ("APIM_DR_BACKUP_TIMEOUT_MINUTES", "-3", "APIM_DR_BACKUP_TIMEOUT_MINUTES"),
        ("APIM_DR_BACKUP_TIMEOUT_MINUTES", "99999999", "APIM_DR_BACKUP_TIMEOUT_MINUTES"),
        ("APIM_DR_MAX_POLL_DELAY_SECONDS", "ten", "APIM_DR_MAX_POLL_DELAY_SECONDS"),
        ("APIM_DR_INSTANCES", "{not json", "APIM_DR_INSTANCES is not valid JSON"),
        ("APIM_DR_INSTANCES", '{"a": 1}', "APIM_DR_INSTANCES must be a JSON list"),
        ("APIM_DR_INSTANCES", "[]", "nothing would be protected"),
        ("APIM_DR_DISCOVERY_SUBSCRIPTIONS", "not-a-guid", "APIM_DR_DISCOVERY_SUBSCRIPTIONS"),
        ("APIM_DR_DISCOVERY_TAG", "novalue", "APIM_DR_DISCOVERY_TAG"),
        ("AZURE_CLIENT_ID", "abc", "AZURE_CLIENT_ID"),
        ("AzureWebJobsStorage", None, "AzureWebJobsStorage__queueServiceUri"),
    ],
)
def test_each_bad_setting_is_named(name, value, fragment):
    found = problems(base(**{name: value}))
    assert any(fragment in p for p in found), found


def test_all_problems_reported_at_once():
    found = problems({"APIM_DR_STORAGE_ACCESS_TYPE": "Nope", "BACKUP_SCHEDULE": "x"})
    joined = "\n".join(found)
    for name in ("APIM_DR_BACKUP_STORAGE_ACCOUNT", "APIM_DR_STORAGE_ACCESS_TYPE", "BACKUP_SCHEDULE",
                 "AzureWebJobsStorage"):
        assert name in joined


def test_access_key_mode_needs_the_key_and_never_echoes_it():
    found = problems(base(APIM_DR_STORAGE_ACCESS_TYPE="AccessKey"))
    assert any("APIM_DR_BACKUP_STORAGE_KEY is missing" in p for p in found)
    s = load_settings(base(APIM_DR_STORAGE_ACCESS_TYPE="AccessKey", APIM_DR_BACKUP_STORAGE_KEY="c2VjcmV0LWtleQ=="))
    assert "c2VjcmV0LWtleQ" not in repr(s)
    assert s.backup_storage_key is not None and s.backup_storage_key.reveal() == "c2VjcmV0LWtleQ=="


def test_webhook_url_is_secret_even_when_invalid():
    found = problems(base(APIM_DR_WEBHOOK_URL="not a url token=abc123"))
    assert any("APIM_DR_WEBHOOK_URL" in p for p in found)
    assert not any("abc123" in p for p in found)


def test_user_assigned_needs_client_id():
    found = problems(base(APIM_DR_STORAGE_ACCESS_TYPE="UserAssignedManagedIdentity"))
    assert any("APIM_DR_STORAGE_IDENTITY_CLIENT_ID is missing" in p for p in found)


def test_one_bad_instance_does_not_stop_the_others():
    entries = [RID, "/subscriptions/nope/resourceGroups/rg/providers/Microsoft.ApiManagement/service/x",
               {"resourceId": RID2, "container": "Bad_Container"}, {"resourceId": RID2, "wat": 1}, 42, RID]
    s = load_settings(base(APIM_DR_INSTANCES=json.dumps(entries)))
    assert [i.name for i in s.instances] == ["apim-one"]
    assert len(s.instance_errors) == 5
    assert s.instance_errors[0].startswith("APIM_DR_INSTANCES[1]")
    assert "already listed at index 0" in s.instance_errors[-1]


def test_instance_options_override_defaults():
    entry = {"resourceId": RID, "container": "other-backups", "accessType": "UserAssignedManagedIdentity",
             "clientId": "11111111-2222-3333-4444-555555555555", "alias": "prod", "standby": RID2}
    inst = load_settings(base(APIM_DR_INSTANCES=json.dumps([entry]))).instances[0]
    assert inst.container == "other-backups"
    assert inst.access_type is StorageAccessType.USER_ASSIGNED
    assert inst.alias == "prod" and inst.standby is not None and inst.standby.service_name == "apim-two"


def test_hostile_and_oversized_values_are_refused_without_flooding():
    huge = "[" + ",".join([json.dumps(RID)] * 50_001) + "]"
    found = problems(base(APIM_DR_INSTANCES=huge))
    assert any("at most" in p for p in found)
    duplicated = load_settings(base(APIM_DR_INSTANCES="[" + ",".join([json.dumps(RID)] * 6000) + "]"))
    assert len(duplicated.instances) == 1 and len(duplicated.instance_errors) == 21
    assert "5979 more entries" in duplicated.instance_errors[-1]
    found = problems(base(APIM_DR_BACKUP_STORAGE_ACCOUNT="x" * 10_000 + "\n\r"))
    assert all(len(p) < 400 for p in found)


def test_identity_based_app_storage_requires_https_uris():
    env = base(AzureWebJobsStorage=None)
    env.update({"AzureWebJobsStorage__queueServiceUri": "http://x.queue.core.windows.net",
                "AzureWebJobsStorage__tableServiceUri": "https://x.table.core.windows.net"})
    found = problems(env)
    assert any("AzureWebJobsStorage__queueServiceUri" in p and "https" in p for p in found)


def test_settings_table_has_unique_documented_names():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.description for s in SETTINGS)


def test_ten_thousand_configured_instances_load_and_too_many_are_named() -> None:
    ids = [f"/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/"
           f"Microsoft.ApiManagement/service/apim-{i:05d}" for i in range(10_000)]
    settings = load_settings(base(APIM_DR_INSTANCES=json.dumps(ids)))
    assert len(settings.instances) == 10_000
    with pytest.raises(SettingsError) as info:
        load_settings(base(APIM_DR_INSTANCES=json.dumps(["x"] * 50_001)))
    assert "at most 50000" in str(info.value) and "DISCOVERY" in str(info.value)


RID_DR = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ApiManagement/service/apim-dr"
RID_DRILL = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.ApiManagement/service/apim-drill"


def test_posture_defaults_and_per_instance_options() -> None:
    s = load_settings(base(APIM_DR_RPO_HOURS="12", APIM_DR_INSTANCES=json.dumps([
        RID, {"resourceId": RID2, "standby": RID_DR, "standbySync": True, "drillTarget": RID_DRILL,
              "drillEveryDays": 2, "rpoHours": 4, "keepLast": 10, "maxAgeDays": 60}])))
    plain, rich = s.instances
    assert (plain.posture.rpo_hours, plain.posture.keep_last, plain.posture.max_age_days) == (12, 3, 37)
    assert not plain.posture.standby_sync and plain.posture.drill_target is None
    p = rich.posture
    assert (p.rpo_hours, p.keep_last, p.max_age_days, p.drill_every_days, p.standby_sync) == (4, 10, 60, 2, True)
    assert p.drill_target is not None and p.drill_target.service_name == "apim-drill"
    assert not s.instance_errors


@pytest.mark.parametrize(("options", "named"), [
    ({"rpoHours": 0}, "rpoHours"),
    ({"rpoHours": "26"}, "rpoHours"),
    ({"keepLast": True}, "keepLast"),
    ({"maxAgeDays": 10**9}, "maxAgeDays"),
    ({"drillEveryDays": -1}, "drillEveryDays"),
    ({"standbySync": "yes", "standby": RID_DR}, "standbySync"),
    ({"standbySync": True}, "standbySync needs a standby"),
    ({"drillTarget": "/subscriptions/x"}, "drillTarget"),
    ({"drillTarget": RID}, "drillTarget is the instance itself"),
])
def test_bad_posture_options_name_the_option_and_skip_the_entry(options: dict, named: str) -> None:
    s = load_settings(base(APIM_DR_INSTANCES=json.dumps([RID2, {"resourceId": RID, **options}])))
    assert [i.resource_id.service_name for i in s.instances] == ["apim-two"]
    assert any(named in e for e in s.instance_errors), s.instance_errors


def test_a_primary_as_drill_or_sync_target_switches_only_that_option_off() -> None:
    s = load_settings(base(APIM_DR_INSTANCES=json.dumps([
        {"resourceId": RID, "standby": RID2, "standbySync": True, "drillTarget": RID2}, RID2])))
    first = s.instances[0]
    assert first.standby is not None and not first.posture.standby_sync and first.posture.drill_target is None
    assert len(s.instances) == 2 and len(s.instance_errors) == 2
    assert all("protected instance (a primary)" in e for e in s.instance_errors)


@pytest.mark.parametrize("name", ["APIM_DR_RPO_HOURS", "APIM_DR_RETENTION_KEEP_LAST", "APIM_DR_RETENTION_MAX_AGE_DAYS",
                                  "APIM_DR_DRILL_EVERY_DAYS"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "1e3", "9" * 30, " "])
def test_posture_settings_refuse_bad_values_by_name(name: str, value: str) -> None:
    if not value.strip():
        load_settings(base(**{name: value}))  # empty means the default
        return
    assert any(name in p for p in problems(base(**{name: value})))


# -- grandfather-father-son retention and copies (issue 21) ------------------------------------------------------
def test_gfs_defaults_are_off_and_per_instance_values_override_the_global_ones() -> None:
    s = load_settings(base(APIM_DR_RETENTION_KEEP_DAILY="7", APIM_DR_INSTANCES=json.dumps([
        RID, {"resourceId": RID2, "keepDaily": 0, "keepWeekly": 4, "keepMonthly": 12}])))
    plain, rich = s.instances
    assert (plain.posture.keep_daily, plain.posture.keep_weekly, plain.posture.keep_monthly) == (7, 0, 0)
    assert (rich.posture.keep_daily, rich.posture.keep_weekly, rich.posture.keep_monthly) == (0, 4, 12)
    assert load_settings(base()).posture.keep_monthly == 0


@pytest.mark.parametrize(("options", "named"), [
    ({"keepDaily": -1}, "keepDaily"),
    ({"keepWeekly": 521}, "keepWeekly"),
    ({"keepMonthly": "12"}, "keepMonthly"),
    ({"keepMonthly": 1.5}, "keepMonthly"),
    ({"copy": "yes"}, "copy"),
    ({"copy": True}, "copy needs APIM_DR_COPY_STORAGE_ACCOUNT"),
])
def test_bad_gfs_or_copy_options_name_the_option_and_skip_the_entry(options: dict, named: str) -> None:
    s = load_settings(base(APIM_DR_INSTANCES=json.dumps([RID2, {"resourceId": RID, **options}])))
    assert [i.resource_id.service_name for i in s.instances] == ["apim-two"]
    assert any(named in e for e in s.instance_errors), s.instance_errors


@pytest.mark.parametrize("name", ["APIM_DR_RETENTION_KEEP_DAILY", "APIM_DR_RETENTION_KEEP_WEEKLY",
                                  "APIM_DR_RETENTION_KEEP_MONTHLY"])
@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "9" * 30, "99999"])
def test_gfs_settings_refuse_bad_values_by_name(name: str, value: str) -> None:
    assert any(name in p for p in problems(base(**{name: value})))


def test_copies_are_on_for_every_identity_instance_once_a_copy_account_is_set() -> None:
    s = load_settings(base(APIM_DR_COPY_STORAGE_ACCOUNT="apimdrcopies", APIM_DR_INSTANCES=json.dumps([
        RID, {"resourceId": RID2, "copy": False}])))
    assert s.copy_account == "apimdrcopies" and s.copy_blob_endpoint == "https://apimdrcopies.blob.core.windows.net"
    assert [i.posture.copy for i in s.instances] == [True, False]
    assert s.posture.copy  # discovered instances are copied too
    none = load_settings(base())
    assert none.copy_account is None and not any(i.posture.copy for i in none.instances)


def test_an_access_key_instance_is_not_copied_unless_it_asks_and_asking_is_an_error() -> None:
    s = load_settings(base(APIM_DR_COPY_STORAGE_ACCOUNT="apimdrcopies", APIM_DR_INSTANCES=json.dumps([
        {"resourceId": RID, "accessType": "AccessKey"},
        {"resourceId": RID2, "accessType": "AccessKey", "copy": True}])))
    assert [(i.name, i.posture.copy) for i in s.instances] == [("apim-one", False)]
    assert any("copy needs a managed identity" in e for e in s.instance_errors), s.instance_errors


@pytest.mark.parametrize(("values", "named"), [
    ({"APIM_DR_COPY_STORAGE_ACCOUNT": "Not_An_Account"}, "APIM_DR_COPY_STORAGE_ACCOUNT"),
    ({"APIM_DR_COPY_STORAGE_ACCOUNT": "x" * 300}, "APIM_DR_COPY_STORAGE_ACCOUNT"),
    ({"APIM_DR_COPY_STORAGE_ACCOUNT": "apimdrbackups"}, "is the backup account itself"),
    ({"APIM_DR_COPY_BLOB_ENDPOINT": "https://x.example"}, "APIM_DR_COPY_STORAGE_ACCOUNT is not"),
    ({"APIM_DR_COPY_STORAGE_ACCOUNT": "apimdrcopies", "APIM_DR_COPY_BLOB_ENDPOINT": "ftp://x"},
     "APIM_DR_COPY_BLOB_ENDPOINT"),
    ({"APIM_DR_COPY_STORAGE_ACCOUNT": "apimdrcopies", "APIM_DR_BACKUP_STORAGE_KEY": "a2V5",
      "APIM_DR_STORAGE_ACCESS_TYPE": "AccessKey"}, "copies work with managed identities only"),
])
def test_a_bad_copy_account_is_named(values: dict[str, str], named: str) -> None:
    found = problems(base(**values))
    assert any(named in p for p in found), found
