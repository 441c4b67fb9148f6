"""What a message says: templates rendered with Jinja2, resolved from the tenant's store."""
