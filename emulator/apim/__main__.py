"""``python -m emulator.apim``: run the APIM management-plane emulator (and optionally Azurite).

See emulator/README.md ("Run it standalone"). Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from emulator.azurite import Azurite
from emulator.certs import TlsFiles, ensure_tls_files

from .app import AppConfig, EmulatorApp
from .seed import SeedError, load_seed, storage_accounts

logger = logging.getLogger("emulator.apim")

DEFAULT_STATE_DIR = Path(".local/apim-emulator")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulator.apim", description=__doc__)
    p.add_argument("--seed", type=Path, required=True, help="seed JSON (see emulator/seed.example.json)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where state.sqlite lives")
    p.add_argument("--port", type=int, default=0, help="ARM (HTTPS) port; 0 = any free port")
    p.add_argument("--identity-port", type=int, default=0, help="managed-identity endpoint (HTTP) port")
    p.add_argument("--dataplane-port", type=int, default=0, help="Key Vault and gateway (HTTPS) port")
    p.add_argument("--proxy-port", type=int, default=0, help="CONNECT proxy for *.vault.azure.net, *.azure-api.net")
    p.add_argument("--blob-endpoint", help="Azurite blob endpoint without account, e.g. https://127.0.0.1:10000")
    p.add_argument("--start-azurite", action="store_true", help="also start Azurite with the seed's accounts")
    p.add_argument("--retry-after", type=float, default=1, help="Retry-After seconds on 202s (real APIM: 60)")
    p.add_argument("--op-duration", type=float, default=2.0, help="seconds a backup/restore takes")
    p.add_argument("--ready-file", type=Path, help="write the endpoints as JSON here once listening")
    p.add_argument("--tls-cert", type=Path, help="certificate (default: made in STATE_DIR/tls)")
    p.add_argument("--tls-key", type=Path, help="private key for --tls-cert")
    p.add_argument("--identity-header", help="X-IDENTITY-HEADER secret (default: generated, kept in the state)")
    p.add_argument("--reset", action="store_true", help="discard existing state and start from the seed")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # azure-core logs every storage request and its headers at INFO; keep the emulator's log readable.
    logging.getLogger("azure").setLevel(logging.WARNING)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("--tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    tls = TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else ensure_tls_files(args.state_dir / "tls")
    try:
        seed = load_seed(args.seed)
    except SeedError as exc:
        print(f"seed error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    azurite: Azurite | None = None
    blob_endpoint = args.blob_endpoint
    if args.start_azurite:
        azurite = Azurite(args.state_dir / "azurite", tls, accounts=storage_accounts(seed)).start()
        blob_endpoint = azurite.endpoint("blob", "").rstrip("/")
    if not blob_endpoint:
        print("give --blob-endpoint (an Azurite blob endpoint) or --start-azurite", file=sys.stderr)
        return 2

    app = EmulatorApp(
        AppConfig(
            state_dir=args.state_dir,
            seed=args.seed,
            tls=tls,
            blob_endpoint=blob_endpoint,
            port=args.port,
            identity_port=args.identity_port,
            retry_after=args.retry_after,
            op_duration=args.op_duration,
            reset=args.reset,
            identity_header=args.identity_header,
            dataplane_port=args.dataplane_port,
            proxy_port=args.proxy_port,
        )
    )
    try:
        app.start()
        info = app.describe()
        if args.ready_file:
            app.write_ready_file(args.ready_file)
        _print_banner(info, azurite, seed)
        # Wake up regularly: a signal delivered to another thread only runs its Python handler once
        # the main thread executes bytecode again, and an untimed wait never returns to do so.
        while not stop.wait(0.5):
            pass
        logger.info("stopping")
    finally:
        app.stop()
        if azurite is not None:
            azurite.stop()
    return 0


def _print_banner(info: dict[str, object], azurite: Azurite | None, seed: dict[str, object]) -> None:
    lines = [
        "APIM emulator ready (Ctrl-C stops it)",
        f"  ARM endpoint        {info['armUrl']}",
        f"  identity endpoint   {info['identityEndpoint']}",
        f"  CA bundle           {info['caBundle']}",
        f"  blob endpoint       {info['blobEndpoint']}",
        f"  admin               {info['armUrl']}/_emulator/health",
        f"  proxy (Key Vault, gateways)  {info['proxyUrl']}",
    ]
    if azurite is not None:
        for name in storage_accounts(seed):
            lines.append(f"  storage account     {name}: {azurite.connection_string(name)}")
    lines += [
        "Environment for clients:",
        f"  export IDENTITY_ENDPOINT={info['identityEndpoint']}",
        f"  export IDENTITY_HEADER={info['identityHeader']}",
        f"  export REQUESTS_CA_BUNDLE={info['caBundle']}",
        f"  export HTTPS_PROXY={info['proxyUrl']}",
        "  export NO_PROXY=127.0.0.1,localhost",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
