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
short-summary: Delete a connected cluster resource (asks for confirmation unless --yes).
"""
