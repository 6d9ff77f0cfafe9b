"""The ament_python face of the `ript` Python package: colcon installs the node executables into
lib/ript_ros (where `ros2 run` and `ros2 launch` look) and the launch files into share/ript_ros.
The code itself is `ript.ros`, installed with the `ript` distribution (the repository root)."""

import os
import xml.etree.ElementTree as ElementTree
from glob import glob

from setuptools import setup

package_name = "ript_ros"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.relpath(os.path.join(HERE, "..", "..", ".."))
VERSION = ElementTree.parse(os.path.join(HERE, "package.xml")).getroot().findtext("version")
NODES = {
    "policy_node": "ript.ros.policy_node:main",
    "trainer_node": "ript.ros.trainer_node:main",
    "ript_panel": "ript.ros.panel_node:main",
    "ript_classifier": "ript.ros.classifier_node:main",
    "ript_libero_bridge": "ript.ros.libero_bridge:main",
    "ript_franka_emulator": "ript.ros.franka_emulator:main",
    "realsense_camera": "ript.ros.camera_node:main",
    "franka_bridge": "ript.ros.franka_bridge:main",
    "ript": "ript.cli.main:main",
}

setup(
    name=package_name,
    version=VERSION,  # package.xml's, which tests/test_version.py holds equal to ript.__version__
    packages=[],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob(os.path.join(ROOT, "launch", "*.launch.py"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ript maintainers",
    maintainer_email="maintainers@ript.dev",
    description="ript's node executables and launch files for a full ROS 2 install.",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in NODES.items()]},
)
