"""HAProxy and nginx as alternative L7 engines: rendering from the L7 config, what they cannot express, the templates' wall, and running them."""
