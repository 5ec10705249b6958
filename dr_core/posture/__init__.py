"""Posture: how well each protected instance is protected right now.

The RPO monitor (:mod:`.rpo`, its record :mod:`.record`) grades the age of each instance's newest
restorable backup and announces a breach and its recovery once; the status document
(:mod:`.document`, built by :mod:`.status`) gathers RPO, backups, open failures, standby and last
drill; the status page (:mod:`.dashboard`) renders it as HTML.
"""
