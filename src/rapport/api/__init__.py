"""HTTP plumbing shared by every domain's api.py: dependencies, error rendering, middleware."""
