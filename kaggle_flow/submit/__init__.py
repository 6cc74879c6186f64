"""After training: test-set predictions, the checked submission CSV, metrics, the local score, the ledger, export."""
