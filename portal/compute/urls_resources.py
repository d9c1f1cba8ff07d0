# SSH keys, firewall rule sets and volumes (pages in portal/compute/views/).
urlpatterns: list = []
