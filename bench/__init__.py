"""The benchmark harness: fraudstream workers against a raw aiokafka ceiling and a naive peer."""
