"""Arguments, named as Microsoft's connectedk8s names them."""
from azure.cli.core.commands.parameters import get_enum_type, get_three_state_flag  # noqa: F401

from azext_connectedk8s._validators import (validate_features, validate_identity_prefixes, validate_pool_size,
                                            validate_port, validate_proxy_settings)


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
        c.argument("api_server_port", options_list=["--port"], type=int, validator=validate_port,
                   help="Local port kubectl talks to.")
        c.argument("pool", options_list=["--pool-size"], type=int, validator=validate_pool_size,
                   help="Relay connections kept ready for new kubectl connections (0 disables).")

    for scope in ("connectedk8s connect", "connectedk8s delete", "connectedk8s enable-features",
                  "connectedk8s disable-features"):
        with self.argument_context(scope) as c:
            c.argument("kube_config", options_list=["--kube-config"],
                       help="Kubeconfig file for the cluster. Default: kubectl's ($KUBECONFIG or ~/.kube/config).")
            c.argument("kube_context", options_list=["--kube-context"], help="Kubeconfig context to use.")
    with self.argument_context("connectedk8s connect") as c:
        c.argument("location", options_list=["--location", "-l"], help="Location of the resource.")
        c.argument("distribution", help="Kubernetes distribution, e.g. generic, k3s, aks_edge.")
        c.argument("infrastructure", help="Infrastructure the cluster runs on, e.g. generic, vsphere.")
        c.argument("timeout", type=int, help="Seconds to wait for the agent to report Connected.")
        c.argument("username_claim", options_list=["--username-claim"], arg_type=get_enum_type(["upn", "oid"]),
                   help="Whom the API server sees for an Entra user, as in kubectl create clusterrolebinding "
                        "--user=...: upn (default) impersonates members by their UPN and guests without one by "
                        "object id; oid impersonates every user by object id. Applications, managed identities "
                        "and groups are always object ids.")
        c.argument("username_prefix", options_list=["--username-prefix"], validator=validate_identity_prefixes,
                   help="Put in front of every impersonated user name (like kube-apiserver's "
                        "--oidc-username-prefix). Default: none.")
        c.argument("groups_prefix", options_list=["--groups-prefix"], validator=validate_identity_prefixes,
                   help="Put in front of every impersonated group object id (like kube-apiserver's "
                        "--oidc-groups-prefix). Default: none.")
        c.argument("agent_image", options_list=["--agent-image"],
                   help="Image reference the agent's Deployment runs, e.g. a copy of scripts/agent-image's build in "
                        "your own registry. Default: clusterconnect-agent:0.1.0.")
        c.argument("agent_host_network", options_list=["--agent-host-network"], arg_type=get_three_state_flag(),
                   help="Run the agent in its node's network namespace, for a cluster whose API server or hub only "
                        "its nodes reach (such as a one-node test cluster whose API server listens on loopback). "
                        "Each replica's health endpoint is then on a loopback port of its own and unprobed, so that "
                        "both fit on one node.")
        # Outbound proxy for the agent (the names Microsoft's connect uses).
        c.argument("proxy_https", options_list=["--proxy-https"], validator=validate_proxy_settings,
                   help="Http proxy URL to be used for https/wss connections of the agent (to the hub and its "
                        "relay), e.g. http://[user:password@]proxy.corp:3128. Kept in a Secret in the cluster.")
        c.argument("proxy_http", options_list=["--proxy-http"], validator=validate_proxy_settings,
                   help="Http proxy URL to be used for http connections of the agent.")
        c.argument("proxy_skip_range", options_list=["--proxy-skip-range"], validator=validate_proxy_settings,
                   help="Comma separated hosts, domains and CIDRs the agent dials without the proxy. The API "
                        "server is always dialled directly, never through the proxy; in-cluster names "
                        "(kubernetes.default.svc, .svc, .cluster.local) are added.")
        c.argument("proxy_cert", options_list=["--proxy-cert"], validator=validate_proxy_settings,
                   help="Path to a CA certificate file (PEM) for an https:// proxy's own certificate (the "
                        "agent's HTTP calls). The relay's WebSockets need an http:// proxy URL: TLS to the hub and "
                        "the relay stays end to end inside its CONNECT tunnel.")
    for scope in ("connectedk8s enable-features", "connectedk8s disable-features"):
        with self.argument_context(scope) as c:
            c.argument("features", options_list=["--features"], nargs="+", validator=validate_features,
                       help="cluster-connect, azure-rbac and/or custom-locations (case-insensitive).")
