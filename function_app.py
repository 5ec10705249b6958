"""The Function App: builds the app and registers the blueprints. Nothing else lives here."""

import azure.functions as func

from triggers.backup import bp as backup_bp
from triggers.continuity import bp as continuity_bp
from triggers.copies import bp as copies_bp
from triggers.dashboard import bp as dashboard_bp
from triggers.posture import bp as posture_bp
from triggers.restore import bp as restore_bp
from triggers.retention import bp as retention_bp
from triggers.snapshot_restore import bp as snapshot_restore_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(backup_bp)
app.register_functions(restore_bp)
app.register_functions(posture_bp)
app.register_functions(dashboard_bp)
app.register_functions(retention_bp)
app.register_functions(continuity_bp)
app.register_functions(snapshot_restore_bp)
app.register_functions(copies_bp)
