"""Standby sync: after each successful backup of a primary, that backup is restored into its standby
(:mod:`.sync`); the standby's record says where the last sync stands and how far it lags (:mod:`.record`).
"""
