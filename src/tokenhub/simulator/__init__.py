"""Protocol-exact fake upstream servers (used by the test suite and `tokenhub simulate`)."""
