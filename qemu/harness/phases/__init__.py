"""One module per phase; each run(ctx, argv) returns a results.Table."""
