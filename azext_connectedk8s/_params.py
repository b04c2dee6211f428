"""Arguments, named as Microsoft's connectedk8s names them."""
from azure.cli.core.commands.parameters import get_three_state_flag  # noqa: F401


def load_arguments(self, _):
    with self.argument_context("connectedk8s") as c:
        c.argument("cluster_name", options_list=["--name", "-n"], id_part="name",
                   help="The name of the connected cluster.")
    with self.argument_context("connectedk8s proxy") as c:
        c.argument("token", options_list=["--token"],
                   help="Service account token to use for the cluster (Token mode). Without it, your Microsoft Entra "
                        "(or hub) sign-in is used.")
        c.argument("path", options_list=["--file", "-f"],
                   help="Kubeconfig file to update. Default: the first file in $KUBECONFIG, else ~/.kube/config. "
                        "Use '-' to print the kubeconfig to stdout instead.")
        c.argument("context_name", options_list=["--kube-context"],
                   help="Name of the kubeconfig context to write. Default: the cluster name.")
        c.argument("api_server_port", options_list=["--port"], type=int,
                   help="Local port kubectl talks to.")
        c.argument("pool", options_list=["--pool-size"], type=int,
                   help="Relay connections kept ready for new kubectl connections (0 disables).")
