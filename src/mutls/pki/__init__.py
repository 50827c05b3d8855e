"""X.509 without I/O: load, inspect, convert, CSRs, signing, CRLs, verify. Time is an argument."""
