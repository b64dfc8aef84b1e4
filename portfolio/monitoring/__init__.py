"""Credit monitoring: bureau alerts and portfolio re-checks decided by monitoring policies, the
limit history they write, and the payment behaviour they read (docs/monitoring.md)."""
