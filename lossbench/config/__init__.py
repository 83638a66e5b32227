"""Configs: YAML in (`yaml_io`), `key=value` overrides (`overrides`), the schema with its defaults
(`schema`), and validation that reports every problem at once (`validate`)."""

from .overrides import COMPONENT_KEYS, apply_overrides
from .schema import TOP_KEYS, Component, Config
from .validate import build, check_value, load
from .yaml_io import flatten, parse_yaml, read_yaml_file

__all__ = [
    "COMPONENT_KEYS",
    "TOP_KEYS",
    "Component",
    "Config",
    "apply_overrides",
    "build",
    "check_value",
    "flatten",
    "load",
    "parse_yaml",
    "read_yaml_file",
]
