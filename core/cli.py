"""What every command's parser shares (no torch import, so `--help` stays fast)."""
import argparse
from pathlib import Path


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with the module docstring as written and every option's default (unless the option is required or
    its help already names the default)."""

    def _get_help_string(self, action):
        if action.required or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def beside_folders(items) -> dict:
    """{name: folder} of a bench's --beside items "FOLDER" (named by the folder's name) or "NAME=FOLDER"."""
    out = {}
    for item in items or ():
        name, sep, folder = item.partition("=")
        if not sep or not name or "/" in name:
            name, folder = Path(item).resolve().name, item
        if name in out:
            raise ValueError(f"--beside: two models named {name!r}; name them NAME=FOLDER")
        out[name] = folder
    return out
