"""The adapters: every use of an Azure SDK, behind the ports of :mod:`dr_core.ports`.

:mod:`.clients` builds the SDK clients from settings (lazily: no SDK import at start-up), :mod:`.arm`
talks to ARM, :mod:`.blobs` to the backup account, :mod:`.tables` to the app's table (jobs, restore
locks, records), :mod:`.queues` to the work queues, :mod:`.notifier` to the webhook; :mod:`.errors`
turns azure-core's exceptions into apim-dr's, in one table. Only :mod:`dr_core.context` creates them.
"""
