"""Restores: a request (:mod:`.request`), the preflight that checks it by name and writes nothing
(:mod:`.preflight`), and the restorer that starts it once (:mod:`.restorer`). Incident restores,
standby syncs and drills all start their restores here.
"""
