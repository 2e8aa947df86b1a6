"""Stand-in for the litellm package in tests: only the type the handler imports."""
