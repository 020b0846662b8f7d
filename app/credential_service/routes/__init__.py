"""HTTP routes, thin: each parses, asks a pure module, and answers."""
