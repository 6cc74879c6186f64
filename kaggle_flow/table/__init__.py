"""The table: a competition's files as downloaded -> one pandas table `id, path, label, split`.

    layouts    the readers of each file layout, and what to tell the user about the table read
    sources    embedded competitions written out as a Kaggle download
    importer   `flow import` (archive or folder -> data/NAME) and `flow init` (folder -> TOML)
"""
