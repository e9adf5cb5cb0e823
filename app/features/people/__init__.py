"""People: sign-in, accounts, credentials, throttling, audit, permissions, budgets."""
