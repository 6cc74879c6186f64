"""The table: a competition's files as downloaded -> one pandas table `id, path, label, split`.

    layouts    the readers of each file layout, and what to tell the user about the table read
    labelfiles label files as shipped: CSV or .xlsx, one-hot class columns, a label map
    pixels     pixel CSVs (one image a row) written once as PNG files
    sources    embedded competitions written out as a Kaggle download
    archive    zip checks (zip slip, size, zip bombs), zips inside a download, a download's outline
    importer   `flow import` (archive or folder -> data/NAME) and `flow init` (download -> TOML)
    infer      a download's layout and labels, as `flow init` reads them
    sample     the submission format from sample_submission.csv, and the metric assumed
    init_toml  the TOML `flow init` writes, and where each of its keys came from
"""
