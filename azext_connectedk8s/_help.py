"""Help text for `az connectedk8s`."""
from knack.help_files import helps

helps["connectedk8s"] = """
type: group
short-summary: Reach Kubernetes clusters behind a firewall through an Arc-style hub (open, self-hostable).
"""

helps["connectedk8s proxy"] = """
type: command
short-summary: Open a local proxy to a connected cluster and point kubectl at it.
long-summary: >
    Fetches a short-lived relay credential for the cluster, merges a context named after the cluster into your
    kubeconfig (the first file of $KUBECONFIG, else ~/.kube/config, or --file), makes it current and serves
    kubectl on 127.0.0.1:PORT until Ctrl+C. Only the client certificate written into that kubeconfig can use the
    port. Credentials are refreshed before they expire; established streams (watches, exec) stay open.
examples:
  - name: Proxy with your signed-in identity, then use kubectl in another shell.
    text: az connectedk8s proxy -n mycluster -g mygroup
  - name: Proxy with a service-account token, on another port, into a separate kubeconfig.
    text: az connectedk8s proxy -n mycluster -g mygroup --token $TOKEN --port 47012 -f ~/.kube/arc
  - name: Print the kubeconfig instead of writing it.
    text: az connectedk8s proxy -n mycluster -g mygroup -f -
"""

helps["connectedk8s show"] = """
type: command
short-summary: Show a connected cluster (properties flattened; -o table adds connectivity and agent version).
"""

helps["connectedk8s list"] = """
type: command
short-summary: List connected clusters in a resource group, or in the subscription.
"""

helps["connectedk8s delete"] = """
type: command
short-summary: Delete a connected cluster and remove its agent from the cluster (asks for confirmation unless --yes).
"""

helps["connectedk8s connect"] = """
type: command
short-summary: Connect a Kubernetes cluster: create the resource and install the agent into the cluster.
long-summary: >
    Creates the connectedCluster with a fresh agent identity (its public key goes into the resource, the private key
    into a Secret in the cluster), installs the agent with server-side apply through your kubeconfig (kubectl must
    be on PATH), then waits until the agent reports Connected.
examples:
  - name: Connect the cluster of the current kubeconfig context.
    text: az connectedk8s connect -n mycluster -g mygroup
  - name: Connect another context, waiting at most two minutes.
    text: az connectedk8s connect -n edge1 -g mygroup --kube-context edge1 --timeout 120
"""

helps["connectedk8s enable-features"] = """
type: command
short-summary: Enable cluster-connect, azure-rbac or custom-locations on a connected cluster.
long-summary: >
    The change is stored on the resource and reaches the agent at its next heartbeat. azure-rbac also binds the four
    Azure Arc Kubernetes levels to Kubernetes' view, edit, admin and cluster-admin roles in the cluster (kubeconfig
    needed); the agent then checks each user's Azure role assignments, at the cluster or a namespace, before
    forwarding the request.
examples:
  - name: Let Azure role assignments decide who may do what in the cluster.
    text: az connectedk8s enable-features -n mycluster -g mygroup --features azure-rbac
"""

helps["connectedk8s disable-features"] = """
type: command
short-summary: Disable features of a connected cluster (asks for confirmation unless --yes).
long-summary: >
    Disabling cluster-connect makes the agent stop listening on the relay (proxies then fail with AZK8S0831); it is
    refused while custom-locations is enabled.
examples:
  - name: Turn off cluster-connect.
    text: az connectedk8s disable-features -n mycluster -g mygroup --features cluster-connect --yes
"""
