"""Loopback fakes of external services, for tests and benchmarks: real SDKs talk to them over HTTP
on 127.0.0.1."""
