"""Print every benchmark figure in one run (``make bench``)."""

from __future__ import annotations

from bench import catalog, copies, dashboard, emulator_children, emulator_load, fleet, imports, lro, planning, rpo


def main() -> None:
    imports.main()
    print()
    planning.main()
    print()
    lro.main()
    print()
    emulator_load.main()
    print()
    emulator_children.main()
    print()
    fleet.main()
    print()
    catalog.main()
    print()
    rpo.main()
    print()
    dashboard.main()
    print()
    copies.main()


if __name__ == "__main__":
    main()
