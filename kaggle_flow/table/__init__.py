"""The table: a competition's files as downloaded -> one pandas table `id, path, label, split`.

    layouts    the readers of each file layout, and what to tell the user about the table read
    labelfiles label files as shipped: CSV or .xlsx, one-hot class columns, a label map
    pixels     pixel CSVs (one image a row) written once as PNG files
    sources    embedded competitions written out as a Kaggle download
    importer   `flow import` (archive or folder -> data/NAME) and `flow init` (folder -> TOML)
"""
