"""The os-ken controller app for L2/L3/L4 balancing of virtual IPs, and its pure decision logic."""
