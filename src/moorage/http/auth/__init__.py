"""Token auth over HTTP: the token endpoint, challenges and credential parsing."""
