"""pytest plugin (entry point `pytest11`): fixtures for handler projects. Filled in by the testing-kit work."""
