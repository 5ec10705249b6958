"""``python -m emulator.blobfront``: run the front on its own, before an Azurite blob endpoint.

    .venv/bin/python -m emulator.blobfront --upstream https://127.0.0.1:10000 --seed emulator/seed.example.json

Prints the front's endpoint and CA bundle (and writes them to --ready-file as JSON); Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from emulator.apim.seed import load_seed, storage_accounts
from emulator.azurite import DEV_ACCOUNT, DEV_KEY
from emulator.certs import TlsFiles, ensure_tls_files

from .front import BlobFront
from .rbac import roles_from_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.blobfront", description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="Azurite's blob endpoint without an account")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--seed", type=Path, help="APIM emulator seed: its storage accounts and keys")
    parser.add_argument("--account", action="append", default=[], metavar="NAME:KEY",
                        help="an account and its key (repeatable); the Azurite dev account is always known")
    parser.add_argument("--roles-from-seed", action="store_true",
                        help="enforce RBAC with the seed's storageAccounts[].roleAssignments")
    parser.add_argument("--roles", type=Path, help="JSON file with the role table")
    parser.add_argument("--state-dir", type=Path, default=Path(".local/blobfront"),
                        help="where generated TLS files go")
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--ready-file", type=Path, help="written (atomically) with the endpoints once listening")
    args = parser.parse_args(argv)

    accounts = {DEV_ACCOUNT: DEV_KEY}
    seed = load_seed(args.seed) if args.seed else None
    if seed is not None:
        accounts.update(storage_accounts(seed))
    for item in args.account:
        name, sep, key = item.partition(":")
        if not sep:
            parser.error(f"--account wants NAME:KEY, got {item!r}")
        accounts[name] = key
    roles = None
    if args.roles:
        roles = json.loads(args.roles.read_text(encoding="utf-8"))
    elif args.roles_from_seed:
        if seed is None:
            parser.error("--roles-from-seed needs --seed")
        roles = roles_from_seed(seed)
    if args.tls_cert and args.tls_key:
        tls = TlsFiles(args.tls_cert, args.tls_key)
    else:
        tls = ensure_tls_files(args.state_dir / "tls")

    front = BlobFront(args.upstream, tls, accounts=accounts, port=args.port, roles=roles).start()
    info = {"endpoint": front.url, "admin": f"{front.url}/_front/", "caBundle": str(tls.ca_bundle),
            "accounts": sorted(accounts), "upstream": front.upstream}
    print(json.dumps(info, indent=2), flush=True)
    if args.ready_file:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        tmp.replace(args.ready_file)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopping.wait()
    front.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
