import os
from glob import glob

from setuptools import find_packages, setup

package_name = "ript_policy"
# Relative to this setup.py (colcon and pip run it from the package folder).
LAUNCH_DIR = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "launch"))

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        # The launch files live at the repository root (launch/), shared by every package's graph.
        (f"share/{package_name}/launch", glob(os.path.join(LAUNCH_DIR, "*.launch.py"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ript maintainers",
    maintainer_email="maintainers@ript.dev",
    description="VLA policies, sampling with log-probs, ONNX export, the ROS 2 policy node and the robot adapters.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["policy_node = ript_policy.policy_node:main",
                                     "realsense_camera = ript_policy.robot.camera_node:main",
                                     "franka_bridge = ript_policy.robot.franka_bridge:main"]},
)
