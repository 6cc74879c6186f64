"""The table: a competition's files as downloaded -> one pandas table `id, path, label, split`."""
