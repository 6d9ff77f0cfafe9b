from setuptools import find_packages, setup

package_name = "ript_trainer"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    package_data={"ript_trainer.panel": ["static/*"]},  # the operator panel's page, served by the node
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ript maintainers",
    maintainer_email="maintainers@ript.dev",
    description="RIPT-VLA LOOP, dynamic rollout sampling, trainer node and operator panel.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["ript = ript_trainer.cli:main",
                                     "trainer_node = ript_trainer.trainer_node:main",
                                     "ript_panel = ript_trainer.panel.node:main",
                                     "ript_classifier = ript_trainer.classifier_node:main"]},
)
