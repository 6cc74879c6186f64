"""After training: the run that predicts, its test-set probabilities, the checked submission CSV, the local score, the ledger, export."""
