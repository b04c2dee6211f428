"""The command table: `az connectedk8s ...`."""
from azext_connectedk8s._format import cluster_table, clusters_table


def load_command_table(self, _):
    with self.command_group("connectedk8s") as g:
        g.custom_command("proxy", "proxy")
        g.custom_show_command("show", "show", table_transformer=cluster_table)
        g.custom_command("list", "list_clusters", table_transformer=clusters_table)
        g.custom_command("delete", "delete", confirmation=True)
        g.custom_command("connect", "connect")
        g.custom_command("enable-features", "enable_features")
        g.custom_command("disable-features", "disable_features", confirmation=True)
