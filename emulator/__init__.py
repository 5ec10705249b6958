"""Local stand-ins for Azure, for the demo and the tests. Never deployed (see .funcignore).

- ``emulator.apim``: the API Management management plane (ARM) over HTTPS, plus an
  App-Service-style managed-identity token endpoint.
- ``emulator.azurite``: starts and stops Azurite (npm ``azurite`` 3.35.0) on free ports.
- ``emulator.funchost``: a small stand-in for the Azure Functions host that runs ``function_app.app``.
- ``emulator.certs``: the self-signed certificate both servers present; clients trust it via a CA bundle.
"""
