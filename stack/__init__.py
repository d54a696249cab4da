"""Local development stack for Kicau: Kafka, Cassandra and Redis run from Maven/Debian, plus the services."""
