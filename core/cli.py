"""What every command's parser shares (no torch import, so `--help` stays fast)."""
import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with the module docstring as written and every option's default (unless the option is required or
    its help already names the default)."""

    def _get_help_string(self, action):
        if action.required or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)
