"""What the HTTP API does beyond reading a request: the layer between web views and
PostgreSQL and Kafka (views call services; services never import views or agents)."""
