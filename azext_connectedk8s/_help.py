"""Help text for `az connectedk8s`.

Each entry is YAML that az parses when help is shown. A summary containing
": " (or starting with a YAML indicator such as '-', '[', '*' or '%') must be
quoted or written as a block scalar (`>`); tests/test_help_yaml.py checks
every entry. Examples follow Microsoft's `az connectedk8s` help where our
command takes the same arguments.
"""
from knack.help_files import helps

helps["connectedk8s"] = """
type: group
short-summary: Manage connected Kubernetes clusters and reach them through a relay, with no inbound port opened.
long-summary: >
    The commands talk to the resource manager of the cloud az is set to (az cloud show), such as a self-hosted
    arc-hub. 'connect' creates the connectedCluster resource and installs an agent that dials out to the hub's relay;
    'proxy' then gives kubectl access to the cluster from anywhere, through that relay.
"""

helps["connectedk8s connect"] = """
type: command
short-summary: Onboard a Kubernetes cluster, creating its connected cluster resource and installing the agent.
long-summary: >
    Checks first that the cluster is reachable through your kubeconfig (kubectl must be on PATH) and that no connected
    cluster of that name exists in the resource group. Then creates the resource with a fresh agent identity (its
    public key goes into the resource, the private key into a Secret in the cluster), installs the agent in namespace
    azure-arc with kubectl server-side apply, and waits up to --timeout seconds until the agent reports Connected.
    The agent is told to reach the hub at the active cloud's resource manager endpoint; when REQUESTS_CA_BUNDLE is set,
    that CA bundle is handed to the agent too, to trust the hub. The agent impersonates each Entra caller: members by
    UPN (bind them with kubectl create clusterrolebinding --user=UPN), guests, applications and managed identities by
    object id, groups by object id; --username-claim oid makes every user an object id. The settings land in the
    ConfigMap azure-arc/clusterconnect-config. Behind a firewall that allows only an HTTP proxy, --proxy-https (and
    --proxy-http, --proxy-skip-range, --proxy-cert) make the agent reach the hub and its relay through that proxy
    with CONNECT tunnels (TLS stays end to end); they are kept in the Secret azure-arc/clusterconnect-proxy. The
    agent reaches the Kubernetes API server directly, never through the proxy, so its address needs no skip entry.
examples:
  - name: Onboard a connected kubernetes cluster with default kube config and kube context.
    text: az connectedk8s connect -g resourceGroupName -n connectedClusterName
  - name: Onboard a connected kubernetes cluster by specifying the kubeconfig and kubecontext.
    text: az connectedk8s connect -g resourceGroupName -n connectedClusterName --kube-config /path/to/kubeconfig --kube-context kubeContextName
  - name: Onboard a k3s cluster running on vSphere, waiting at most two minutes for the agent.
    text: az connectedk8s connect -g resourceGroupName -n connectedClusterName --distribution k3s --infrastructure vsphere --timeout 120
  - name: Onboard a cluster whose RoleBindings name Entra users by object id rather than by UPN.
    text: az connectedk8s connect -g resourceGroupName -n connectedClusterName --username-claim oid
  - name: Onboard a cluster with the agent image pushed to your own registry.
    text: az connectedk8s connect -g resourceGroupName -n connectedClusterName --agent-image registry.example.com/clusterconnect-agent:0.1.0
  - name: Onboard a connected kubernetes cluster by specifying the https proxy, http proxy, no proxy with cert settings.
    text: az connectedk8s connect -g resourceGroupName -n connectedClusterName --proxy-cert /path/to/crt --proxy-https https://proxy-url --proxy-http http://proxy-url --proxy-skip-range excludedIP,excludedCIDR,exampleCIDRfollowed,10.0.0.0/24
"""

helps["connectedk8s proxy"] = """
type: command
short-summary: Get access to a connected kubernetes cluster, through a local proxy that kubectl talks to.
long-summary: >
    Fetches a short-lived relay credential for the cluster (listClusterUserCredential), merges a context named after the
    cluster (or --kube-context) into your kubeconfig and makes it current, then serves kubectl on https://127.0.0.1:PORT
    until Ctrl+C. The kubeconfig written is the first file of $KUBECONFIG, else ~/.kube/config, unless --file is given
    ('--file -' prints it instead); other clusters, users and contexts in it are kept. The port accepts only the client
    certificate written into that kubeconfig. The relay credential, and the access token of your sign-in when no --token
    is given, are refreshed before they expire. The proxy runs inside the az process; nothing is downloaded and no
    second local port is opened. Like az itself, it honours HTTPS_PROXY and NO_PROXY (upper or lower case): the relay
    is then reached through a CONNECT tunnel of that proxy, with TLS end to end.
examples:
  - name: Get access to a connected kubernetes cluster.
    text: az connectedk8s proxy -n clusterName -g resourceGroupName
  - name: Get access to a connected kubernetes cluster with service account token.
    text: az connectedk8s proxy -n clusterName -g resourceGroupName --token tokenValue
  - name: Get access to a connected kubernetes cluster by specifying custom kubeconfig location.
    text: az connectedk8s proxy -n clusterName -g resourceGroupName -f path/to/kubeconfig
  - name: Get access to a connected kubernetes cluster by specifying custom context.
    text: az connectedk8s proxy -n clusterName -g resourceGroupName --kube-context contextName
  - name: Run a second proxy next to the first one, on another port.
    text: az connectedk8s proxy -n otherClusterName -g resourceGroupName --port 47012
  - name: Print the kubeconfig to stdout instead of writing it to a file.
    text: az connectedk8s proxy -n clusterName -g resourceGroupName -f -
"""

helps["connectedk8s show"] = """
type: command
short-summary: Show details of a connected kubernetes cluster.
long-summary: >
    The JSON output has the resource's properties flattened to the top level, plus resourceGroup. The table output
    shows name, location, resource group, connectivity status, agent version and Kubernetes version.
examples:
  - name: Show the details for a connected kubernetes cluster.
    text: az connectedk8s show -g resourceGroupName -n connectedClusterName
  - name: Show its connectivity status and agent version as a table.
    text: az connectedk8s show -g resourceGroupName -n connectedClusterName -o table
"""

helps["connectedk8s list"] = """
type: command
short-summary: List connected kubernetes clusters, in a resource group or in the whole subscription.
long-summary: >
    Each cluster is shown as 'az connectedk8s show' shows it, properties flattened; -o table adds connectivity status
    and agent version.
examples:
  - name: List all connected kubernetes clusters in a resource group.
    text: az connectedk8s list -g resourceGroupName --subscription subscriptionName
  - name: List all connected kubernetes clusters in a subscription.
    text: az connectedk8s list --subscription subscriptionName
  - name: List the clusters of the current subscription as a table.
    text: az connectedk8s list -o table
"""

helps["connectedk8s delete"] = """
type: command
short-summary: Delete a connected kubernetes cluster along with connected cluster agents.
long-summary: >
    Asks for confirmation unless --yes is given. Deletes the resource first, then, through your kubeconfig, the
    namespaces, cluster roles and cluster role bindings labelled app.kubernetes.io/part-of=connectedk8s. If the
    cluster cannot be reached the resource is deleted all the same, and a warning gives the kubectl command that
    removes the agent later.
examples:
  - name: Delete a connected kubernetes cluster and connected cluster agents with default kubeconfig and kubecontext.
    text: az connectedk8s delete -g resourceGroupName -n connectedClusterName
  - name: Delete a connected kubernetes cluster by specifying the kubeconfig and kubecontext for connected cluster agents deletion.
    text: az connectedk8s delete -g resourceGroupName -n connectedClusterName --kube-config /path/to/kubeconfig --kube-context kubeContextName
  - name: Delete without asking for confirmation, e.g. in a script.
    text: az connectedk8s delete -g resourceGroupName -n connectedClusterName --yes
"""

helps["connectedk8s enable-features"] = """
type: command
short-summary: Enables the selective features on the connected cluster (cluster-connect, azure-rbac, custom-locations).
long-summary: >
    Feature names are case-insensitive and may be given space- or comma-separated. The change is stored on the
    resource and the agent applies it at its next heartbeat. custom-locations needs cluster-connect. azure-rbac also
    binds the Azure Arc Kubernetes Viewer, Writer, Admin and Cluster Admin roles to Kubernetes' view, edit, admin and
    cluster-admin cluster roles in the cluster, through your kubeconfig (--kube-config, --kube-context); the agent
    then lets each request through only if the caller's Azure role assignments, on the cluster or on a namespace,
    allow it.
examples:
  - name: Enables the Cluster-Connect feature.
    text: az connectedk8s enable-features -n clusterName -g resourceGroupName --features cluster-connect
  - name: Enable multiple features.
    text: az connectedk8s enable-features -n clusterName -g resourceGroupName --features cluster-connect custom-locations
  - name: Let Azure role assignments decide who may do what in the cluster.
    text: az connectedk8s enable-features -n clusterName -g resourceGroupName --features azure-rbac --kube-config /path/to/kubeconfig
"""

helps["connectedk8s disable-features"] = """
type: command
short-summary: Disables the selective features on the connected cluster.
long-summary: >
    Asks for confirmation unless --yes is given. The agent applies the change at its next heartbeat. With
    cluster-connect off the agent stops listening on the relay, and proxies fail with AZK8S0831; disabling it is
    refused while custom-locations is enabled. Disabling azure-rbac removes its role bindings from the cluster,
    through your kubeconfig.
examples:
  - name: Disables the azure-rbac feature.
    text: az connectedk8s disable-features -n clusterName -g resourceGroupName --features azure-rbac
  - name: Disable multiple features.
    text: az connectedk8s disable-features -n clusterName -g resourceGroupName --features custom-locations azure-rbac
  - name: Turn off cluster-connect without a confirmation prompt.
    text: az connectedk8s disable-features -n clusterName -g resourceGroupName --features cluster-connect --yes
"""
