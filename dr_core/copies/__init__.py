"""Copies in a second region: every succeeded backup (and its sidecars) copied server-side to a second account.

:mod:`.verify` decides whether a copy is good (pure), :mod:`.copier` copies after each backup and catches
up hourly, :mod:`.record` is where an instance's copies stand (the lag the status page shows), and
:mod:`.choice` is the one rule that reads the copy when the backup account is unreachable (the restore
preflight, the catalog listing and failover use it).
"""
