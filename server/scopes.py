"""API key scopes and the sandbox key: constants the command line needs without importing the
server's configuration (and, through it, the portfolio workflows)."""

SCOPES = ("evaluate", "decisions:read", "policies:admin", "collection", "monitoring", "lab", "experiments")
SANDBOX_KEY = "regua-sandbox"
