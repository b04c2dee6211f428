"""Table output: what people ask for, connectivity and agent version too."""
from collections import OrderedDict


def cluster_table(c):
    return OrderedDict([
        ("Name", c.get("name")),
        ("Location", c.get("location")),
        ("ResourceGroup", c.get("resourceGroup")),
        ("ConnectivityStatus", c.get("connectivityStatus")),
        ("AgentVersion", c.get("agentVersion")),
        ("KubernetesVersion", c.get("kubernetesVersion")),
    ])


def clusters_table(cs):
    return [cluster_table(c) for c in cs]
