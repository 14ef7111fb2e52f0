"""Shared test setup: `tests` is a package, so every test imports its helpers by name
(`tests.scenarios`, `..reference`, `..strategies`); nothing here touches sys.path."""
