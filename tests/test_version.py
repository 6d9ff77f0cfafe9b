"""One version: `ript.__version__` (which pyproject.toml reads); the ROS packages' package.xml,
which ROS requires to carry one, must say the same."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import tomllib

import ript

ROOT = Path(__file__).resolve().parents[1]


def test_the_ros_packages_carry_the_package_version():
    versions = {
        path.parent.name: ElementTree.parse(path).getroot().findtext("version")
        for path in sorted((ROOT / "ros2_ws" / "src").glob("*/package.xml"))
    }
    assert versions and set(versions.values()) == {ript.__version__}, versions


def test_pyproject_takes_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ript.__version__"}
