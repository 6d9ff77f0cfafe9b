"""The `ript` command line: one module per subcommand."""
