"""Restore drills: the newest verifiable backup restored into a dedicated instance on a schedule, then
what arrived compared with the backup's manifest (:mod:`.drills`); each drill is one record with its
verification, RTO and RPO (:mod:`.record`).
"""
