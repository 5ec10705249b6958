"""The shared kernel: what every capability uses and nothing here depends on a capability or an Azure SDK.

Resource IDs (:mod:`.ids`), time (:mod:`.clock`), the error tree and its one table to HTTP statuses
and CLI exit codes (:mod:`.errors`), the state enums of every record (:mod:`.phases`), settings with
every default declared once and the timer schedules (:mod:`.settings`, :mod:`.schedule`), structured
event lines (:mod:`.events`) and the one way to start worker threads (:mod:`.threads`).
"""
