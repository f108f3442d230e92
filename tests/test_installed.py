"""The tests exercise the installed package, not the source tree."""

import sysconfig
from pathlib import Path

import api
import ledger
import migrations
import projections


def test_packages_are_imported_from_site_packages() -> None:
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for package in (ledger, projections, api, migrations):
        assert Path(package.__file__).resolve().is_relative_to(site), package.__file__


def test_migrations_ship_as_package_data() -> None:
    from ledger.migrate import shipped_migrations

    names = [m.name for m in shipped_migrations()]
    assert names[:2] == ["0001_log.sql", "0002_projections.sql"]
