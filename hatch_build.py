"""Editable installs get only the start-up hook: the package and YAMLs are read from the checkout itself."""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        if version == "editable":
            build_data["force_include_editable"] = {"ultralytics_convmixer/_startup.pth": "ultralytics_convmixer.pth"}
