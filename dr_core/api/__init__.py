"""The HTTP API, independent of Azure Functions: :mod:`.handlers` (the routes, on the use cases) and
:mod:`.http` (the response type, the error guard, request-body parsing).
"""
