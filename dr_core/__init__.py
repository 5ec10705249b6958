"""apim-dr core: everything that is not a trigger.

Nothing here imports ``azure.functions``; the trigger modules in ``triggers/`` translate
Functions bindings into calls of this package, and the operator CLI calls it directly.
"""

__version__ = "0.1.0"
