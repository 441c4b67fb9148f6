"""What a message says: tenant templates rendered with Jinja2 in a sandbox, within a budget,
and the starter templates we ship."""
