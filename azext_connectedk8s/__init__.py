"""connectedk8s az extension: Azure Arc cluster connect, open and self-hostable.

Commands live in commands.py, their arguments in _params.py and help in
_help.py; custom.py holds the implementations. The long-running proxy, its
TLS and the kubeconfig rewriting run in the native core
(azext_connectedk8s._native, C), inside this az process.
"""
from azure.cli.core import AzCommandsLoader

from azext_connectedk8s._help import helps  # noqa: F401  (registers help text)


class ConnectedK8sCommandsLoader(AzCommandsLoader):
    def __init__(self, cli_ctx=None):
        from azure.cli.core.commands import CliCommandType
        custom = CliCommandType(operations_tmpl="azext_connectedk8s.custom#{}")
        super().__init__(cli_ctx=cli_ctx, custom_command_type=custom)

    def load_command_table(self, args):
        from azext_connectedk8s.commands import load_command_table
        load_command_table(self, args)
        return self.command_table

    def load_arguments(self, command):
        from azext_connectedk8s._params import load_arguments
        load_arguments(self, command)


COMMAND_LOADER_CLS = ConnectedK8sCommandsLoader
