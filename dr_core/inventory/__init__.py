"""Which instances are protected (configured or discovered by tag), and the one resolver every path uses
to find an instance by resource ID, alias or service name (:mod:`.resolver`).
"""
