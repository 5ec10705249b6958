"""Sample app for the host stand-in tests: builds the app and registers the blueprint, like the real app."""

import azure.functions as func
from sample_blueprint import bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
