"""What a process runs with: settings, shared connections, the clock, outage detection."""
